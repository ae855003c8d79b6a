//! The event log in the console: filters by person, door, time, kind and result; keyset
//! paging that stays fast with millions of rows; CSV export of what the filters select.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;
use futures_util::stream;
use serde::Deserialize;

use super::dashboard::FeedItem;
use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Problems, Section, page, page_with_status};
use super::people::end_of_day;
use crate::app::state::AppState;
use crate::entities::FieldErrors;
use crate::policy::Snapshot;
use crate::store::event_log::{EventFilter, EventKind, recent};

const PAGE_SIZE: i64 = 50;
/// Rows read per query while exporting: the export streams, it never holds the whole log.
const EXPORT_CHUNK: i64 = 2_000;

#[derive(Deserialize, Default, Clone)]
pub struct EventsQuery {
    /// Employee ID of the person.
    #[serde(default)]
    person: String,
    #[serde(default)]
    door: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    result: String,
    /// First day (on the door's site's clock, else the page's), inclusive.
    #[serde(default)]
    from: String,
    /// Last day (the same clock), inclusive.
    #[serde(default)]
    until: String,
    #[serde(default)]
    before_id: Option<i64>,
}

impl EventsQuery {
    /// The clock the from and until days are read on: the chosen door's site's, else the
    /// page's `page`.
    fn days_zone(&self, snapshot: &Snapshot, page: Tz) -> Tz {
        self.door
            .parse::<i64>()
            .ok()
            .and_then(|id| snapshot.door_timezone(id))
            .unwrap_or(page)
    }

    /// The filter these fields select, or what is wrong with them; days are whole days on
    /// [`EventsQuery::days_zone`]'s clock.
    fn filter(&self, snapshot: &Snapshot, page: Tz) -> Result<EventFilter, FieldErrors> {
        let tz = self.days_zone(snapshot, page);
        let mut errors = FieldErrors::default();
        let mut filter = EventFilter {
            before_id: self.before_id,
            ..Default::default()
        };
        let person = self.person.trim();
        if !person.is_empty() {
            match snapshot.person_by_employee_id(person) {
                Some(p) => filter.person_id = Some(p.id),
                None => errors.add("person", format!("no person has employee ID “{person}”")),
            }
        }
        if !self.door.is_empty() {
            match self.door.parse::<i64>() {
                Ok(id) if snapshot.door(id).is_some() => filter.door_id = Some(id),
                _ => errors.add("door", "choose a door from the list"),
            }
        }
        if !self.kind.is_empty() {
            if EventKind::ALL.iter().any(|k| k.as_str() == self.kind) {
                filter.kind = Some(self.kind.clone());
            } else {
                errors.add("kind", "choose a kind from the list");
            }
        }
        if !self.result.is_empty() {
            if ["granted", "denied", "pin_required"].contains(&self.result.as_str()) {
                filter.result = Some(self.result.clone());
            } else {
                errors.add("result", "choose a result from the list");
            }
        }
        let day = |field: &str, text: &str, errors: &mut FieldErrors| -> Option<NaiveDate> {
            if text.trim().is_empty() {
                return None;
            }
            let parsed = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d");
            if parsed.is_err() {
                errors.add(field, "enter a date like 2026-12-01");
            }
            parsed.ok()
        };
        if let Some(from) = day("from", &self.from, &mut errors) {
            filter.from = from
                .pred_opt()
                .and_then(|d| end_of_day(d, tz))
                .or(Some(chrono::DateTime::<Utc>::MIN_UTC));
        }
        if let Some(until) = day("until", &self.until, &mut errors) {
            filter.until = end_of_day(until, tz);
        }
        if errors.is_empty() {
            Ok(filter)
        } else {
            Err(errors)
        }
    }

    /// This query's URL with `before_id` set, for the next page.
    fn href(&self, path: &str, before_id: Option<i64>) -> String {
        let mut pairs = vec![
            ("person", self.person.clone()),
            ("door", self.door.clone()),
            ("kind", self.kind.clone()),
            ("result", self.result.clone()),
            ("from", self.from.clone()),
            ("until", self.until.clone()),
        ];
        pairs.retain(|(_, v)| !v.is_empty());
        if let Some(id) = before_id {
            pairs.push(("before_id", id.to_string()));
        }
        match serde_urlencoded::to_string(&pairs) {
            Ok(q) if !q.is_empty() => format!("{path}?{q}"),
            _ => path.to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage {
    chrome: Chrome,
    query: EventsQuery,
    doors: Vec<(i64, String)>,
    kinds: Vec<&'static str>,
    problems: Problems,
    items: Vec<FeedItem>,
    next_href: Option<String>,
    export_href: String,
    first_page_href: Option<String>,
    /// The clock the from and until days are read on.
    days_zone: Tz,
}

/// GET /events
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, PageError> {
    let query = query.into_inner();
    let chrome = Chrome::new(&state, &viewer, Section::Events);
    let snapshot = state.live.snapshot();
    let mut doors: Vec<(i64, String)> = snapshot
        .doors()
        .iter()
        .map(|d| (d.id, d.name.clone()))
        .collect();
    doors.sort_by(|a, b| a.1.cmp(&b.1));
    let kinds = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    let export_href = query.href("/events.csv", None);
    let first_page_href = query.before_id.map(|_| query.href("/events", None));
    let days_zone = query.days_zone(&snapshot, chrome.timezone);
    let filter = match query.filter(&snapshot, chrome.timezone) {
        Ok(filter) => filter,
        Err(problems) => {
            return page_with_status(
                actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                &EventsPage {
                    chrome,
                    query,
                    doors,
                    kinds,
                    problems: Problems(problems),
                    items: Vec::new(),
                    next_href: None,
                    export_href,
                    first_page_href,
                    days_zone,
                },
            );
        }
    };
    // One more than a page, to know whether there is a next one without counting.
    let rows = state
        .read(move |conn| Ok(recent(conn, &filter, PAGE_SIZE + 1)?))
        .await?;
    let more = rows.len() > PAGE_SIZE as usize;
    let items: Vec<FeedItem> = rows
        .into_iter()
        .take(PAGE_SIZE as usize)
        .map(|row| FeedItem::new(row, &snapshot))
        .collect();
    let next_href = more
        .then(|| {
            items
                .last()
                .map(|last| query.href("/events", Some(last.id())))
        })
        .flatten();
    page(&EventsPage {
        chrome,
        query,
        doors,
        kinds,
        problems: Problems::default(),
        items,
        next_href,
        export_href,
        first_page_href,
        days_zone,
    })
}

/// One CSV field, quoted when it must be, with formula-starting text defused so that a
/// name typed as `=HYPERLINK(…)` stays text in a spreadsheet.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One event as a CSV row; its time in RFC 3339 on its site's clock (else `page`'s), with
/// the offset, so that each row is unambiguous on its own.
fn csv_line(item: &FeedItem, page: Tz) -> String {
    let event = &item.event.event;
    let fields = [
        item.id().to_string(),
        event.at.with_timezone(&item.zone_or(page)).to_rfc3339(),
        event.kind.as_str().to_owned(),
        event.result.clone().unwrap_or_default(),
        event.deny_code.clone().unwrap_or_default(),
        item.person
            .as_ref()
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
        event.person_id.map(|id| id.to_string()).unwrap_or_default(),
        item.door.clone().unwrap_or_default(),
        event.door_id.map(|id| id.to_string()).unwrap_or_default(),
        event.reader_id.clone().unwrap_or_default(),
        event.decision_id.clone().unwrap_or_default(),
    ];
    let mut line = fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

/// GET /events.csv: every event the filters select, newest first, streamed.
pub async fn export(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, PageError> {
    let tz = Chrome::new(&state, &viewer, Section::Events).timezone;
    let snapshot = state.live.snapshot();
    let filter = query
        .filter(&snapshot, tz)
        .map_err(|problems| PageError::BadForm(Problems(problems).others(&[]).join(", ")))?;
    let name = format!(
        "gatehouse-events-{}.csv",
        state.clock.now().with_timezone(&tz).format("%Y%m%d-%H%M%S")
    );
    let header = "id,at,kind,result,deny_code,person,person_id,door,door_id,reader,decision_id\r\n";
    let state = state.clone();
    let chunks = stream::unfold((Some(filter), true), move |(filter, first)| {
        let state = state.clone();
        async move {
            if first {
                return Some((
                    Ok::<_, actix_web::Error>(web::Bytes::from(header)),
                    (filter, false),
                ));
            }
            let filter = filter?;
            let query = filter.clone();
            let rows = match state
                .read(move |conn| Ok(recent(conn, &query, EXPORT_CHUNK)?))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "event export stopped");
                    return None;
                }
            };
            if rows.is_empty() {
                return None;
            }
            let next = (rows.len() == EXPORT_CHUNK as usize).then(|| EventFilter {
                before_id: rows.last().map(|r| r.id),
                ..filter
            });
            let snapshot = state.live.snapshot();
            let mut text = String::new();
            for row in rows {
                text.push_str(&csv_line(&FeedItem::new(row, &snapshot), tz));
            }
            Some((Ok(web::Bytes::from(text)), (next, false)))
        }
    });
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        ))
        .streaming(chunks))
}
