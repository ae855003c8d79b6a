//! The "why?" page: may this person open this door at this time, and exactly why, from the
//! same pure decision the doors use.

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::kit::session::Viewer;
use super::kit::{Chrome, PageError, Problems, Section, page_with_status};
use crate::app::state::AppState;
use crate::entities::people::{People, PersonFilter};
use crate::entities::{Entity, FieldErrors, Page};
use crate::policy::explain::Explanation;
use crate::policy::explain_query::{DoorQuery, SubjectQuery, answer};

#[derive(Deserialize, Default)]
pub struct WhyQuery {
    #[serde(default)]
    person: String,
    #[serde(default)]
    door: String,
    #[serde(default)]
    when: String,
}

#[derive(Template)]
#[template(path = "why.html")]
struct WhyPage {
    chrome: Chrome,
    person: String,
    door: String,
    when: String,
    doors: Vec<(i64, String)>,
    problems: Problems,
    explanation: Option<Explanation>,
    /// The clock `when` is read on and the answer's times shown on: the door's site's.
    zone: Tz,
}

const WHEN_FORMAT: &str = "%Y-%m-%dT%H:%M";

/// GET /why: the form, and the answer when it is filled in.
pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<WhyQuery>,
) -> Result<HttpResponse, PageError> {
    let WhyQuery { person, door, when } = query.into_inner();
    let chrome = Chrome::new(&state, &viewer, Section::Why);
    let snapshot = state.live.snapshot();
    let door_id = door.parse::<i64>().ok();
    let tz = door_id
        .and_then(|id| snapshot.door_timezone(id))
        .unwrap_or(chrome.timezone);
    let mut doors: Vec<(i64, String)> = snapshot
        .doors()
        .iter()
        .map(|d| (d.id, d.name.clone()))
        .collect();
    doors.sort_by(|a, b| a.1.cmp(&b.1));
    let now = state.clock.now();
    // Where sites keep different time an empty "when" stays empty and means now: a time
    // filled in on one site's clock would be read on another's once a door is chosen.
    let when_text = if when.trim().is_empty() && !chrome.clocks_differ() {
        now.with_timezone(&tz).format(WHEN_FORMAT).to_string()
    } else {
        when.trim().to_owned()
    };
    let mut problems = FieldErrors::default();
    let mut explanation = None;
    if !person.trim().is_empty() || !door.is_empty() {
        let at = if when_text.is_empty() {
            Some(now)
        } else {
            NaiveDateTime::parse_from_str(&when_text, WHEN_FORMAT)
                .ok()
                .and_then(|t| t.and_local_timezone(tz).earliest())
                .map(|t| t.with_timezone(&Utc))
        };
        if at.is_none() {
            problems.add("when", "enter a date and time like 2026-12-01T09:30");
        }
        if door_id.is_none() {
            problems.add("door", "choose a door");
        }
        let subject = resolve_person(&state, person.trim(), &mut problems).await?;
        if let (Some(subject), Some(door_id), Some(at)) = (subject, door_id, at) {
            let result = state.live.read_presence(|presence| {
                answer(
                    &snapshot,
                    presence,
                    &subject,
                    &DoorQuery::Id(door_id),
                    at,
                    state.clock.now(),
                )
            });
            match result {
                Ok(e) => explanation = Some(e),
                Err(e) => problems.add("door", e.to_string()),
            }
        }
    }
    let status = Problems::status(problems.is_empty());
    page_with_status(
        status,
        &WhyPage {
            chrome,
            person,
            door,
            when: when_text,
            doors,
            problems: Problems(problems),
            explanation,
            zone: tz,
        },
    )
}

/// A person named by employee ID, or by a name (or part of one) that only they match.
async fn resolve_person(
    state: &AppState,
    text: &str,
    problems: &mut FieldErrors,
) -> Result<Option<SubjectQuery>, PageError> {
    if text.is_empty() {
        problems.add("person", "enter a name or an employee ID");
        return Ok(None);
    }
    if let Some(p) = state.live.snapshot().person_by_employee_id(text) {
        return Ok(Some(SubjectQuery::PersonId(p.id)));
    }
    let q = text.to_owned();
    let (matches, total) = state
        .read(move |conn| {
            Ok(People::list(
                conn,
                &PersonFilter {
                    q: Some(q),
                    ..Default::default()
                },
                Page {
                    offset: 0,
                    limit: 5,
                },
            )?)
        })
        .await?;
    // An exact name wins over people whose names merely contain it.
    if let Some(exact) = matches.iter().find(|p| p.name.eq_ignore_ascii_case(text)) {
        return Ok(Some(SubjectQuery::PersonId(exact.id)));
    }
    match (total, matches.first()) {
        (1, Some(only)) => Ok(Some(SubjectQuery::PersonId(only.id))),
        (0, _) => {
            problems.add("person", format!("nobody is named or numbered “{text}”"));
            Ok(None)
        }
        _ => {
            let names: Vec<String> = matches
                .iter()
                .map(|p| format!("{} ({})", p.name, p.employee_id))
                .collect();
            problems.add(
                "person",
                format!(
                    "{total} people match; give the employee ID of one: {}{}",
                    names.join(", "),
                    if total > 5 { ", …" } else { "" }
                ),
            );
            Ok(None)
        }
    }
}
