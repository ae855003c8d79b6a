//! People: the searchable, paged list; adding a person with a card and access in one form;
//! a person's page with their cards, access and recent events; suspend, reinstate, terminate.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::dashboard::FeedItem;
use super::kit::notice::{Notice, see_other_saying};
use super::kit::saved;
use super::kit::session::{Posted, Viewer};
use super::kit::{Chrome, PageError, Problems, Section, page, page_with_status};
use crate::app::state::AppState;
use crate::entities::credentials::{
    self as cards, CredentialFilter, CredentialInput, CredentialView, Credentials, Issued,
};
use crate::entities::entitlements::{
    EntitlementFilter, EntitlementInput, EntitlementView, Entitlements,
};
use crate::entities::levels::{LevelFilter, Levels};
use crate::entities::people::{People, PersonFilter, PersonInput, PersonView};
use crate::entities::{self, ChangeContext, ChangeError, Entity, FieldErrors, Page};
use crate::policy::{PeopleQuery, PersonStatus, Snapshot};
use crate::store::event_log::{EventFilter, recent};
use crate::web::error::ApiError;

/// People per page of the list.
const PAGE_SIZE: i64 = 50;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: Option<i64>,
}

#[derive(Template)]
#[template(path = "people/list.html")]
struct ListPage {
    chrome: Chrome,
    q: String,
    status: String,
    people: Vec<PersonView>,
    total: i64,
    page: i64,
    pages: i64,
}

impl ListPage {
    /// The list's URL for another page, keeping the search.
    fn page_href(&self, page: &i64) -> String {
        format!(
            "/people?q={}&status={}&page={page}",
            super::kit::percent_encode_query(&self.q),
            super::kit::percent_encode_query(&self.status)
        )
    }
}

/// GET /people
pub async fn list(
    state: web::Data<AppState>,
    viewer: Viewer,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, PageError> {
    let ListQuery { q, status, page: n } = query.into_inner();
    let page_no = n.unwrap_or(1).max(1);
    let filter = PersonFilter {
        q: Some(q.trim().to_owned()).filter(|q| !q.is_empty()),
        status: Some(status.clone()).filter(|s| !s.is_empty()),
        ..Default::default()
    };
    let paging = Page {
        offset: (page_no - 1).saturating_mul(PAGE_SIZE),
        limit: PAGE_SIZE,
    };
    // The live snapshot holds every person already: searching and paging it in memory
    // costs the same on the last page of 100,000 as on the first, where SQL would scan the
    // table for a search and walk the index to an offset. While the snapshot is stale (a
    // rebuild failed) the database is asked instead, so the list never hides a change.
    let snapshot = Some(state.live.snapshot()).filter(|_| state.live.stale_because().is_none());
    let (people, total) = state
        .read(move |conn| {
            let status = match filter.status.as_deref().map(str::parse::<PersonStatus>) {
                None => Some(None),
                Some(Ok(s)) => Some(Some(s)),
                Some(Err(_)) => None,
            };
            match (snapshot, status) {
                (Some(snapshot), Some(status)) => {
                    let found = snapshot.find_people(
                        PeopleQuery {
                            text: filter.q.as_deref(),
                            status,
                        },
                        usize::try_from(paging.offset).unwrap_or(usize::MAX),
                        usize::try_from(paging.limit).unwrap_or(0),
                    );
                    let total = i64::try_from(found.total).unwrap_or(i64::MAX);
                    Ok((People::in_order(conn, &found.ids)?, total))
                }
                _ => Ok(People::list(conn, &filter, paging)?),
            }
        })
        .await?;
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    page(&ListPage {
        chrome: Chrome::new(&state, &viewer, Section::People),
        q,
        status,
        people,
        total,
        page: page_no,
        pages,
    })
}

/// What the "Add person" form holds, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct NewPersonForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    employee_id: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    person_type: String,
    #[serde(default)]
    card: String,
    #[serde(default)]
    level_id: String,
    #[serde(default)]
    valid_until: String,
}

#[derive(Template)]
#[template(path = "people/new.html")]
struct NewPage {
    chrome: Chrome,
    form: NewPersonForm,
    levels: Vec<(i64, String)>,
    problems: Problems,
}

async fn level_choices(state: &AppState) -> Result<Vec<(i64, String)>, PageError> {
    let levels = state
        .read(|conn| {
            let (levels, _) = Levels::list(
                conn,
                &LevelFilter::default(),
                Page {
                    offset: 0,
                    limit: 1000,
                },
            )?;
            Ok(levels)
        })
        .await?;
    let mut choices: Vec<(i64, String)> = levels.into_iter().map(|l| (l.id, l.name)).collect();
    choices.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(choices)
}

/// GET /people/new
pub async fn new_form(
    state: web::Data<AppState>,
    viewer: Viewer,
) -> Result<HttpResponse, PageError> {
    viewer.may_change_policy()?;
    page(&NewPage {
        chrome: Chrome::new(&state, &viewer, Section::People),
        form: NewPersonForm {
            person_type: "employee".to_owned(),
            ..Default::default()
        },
        levels: level_choices(&state).await?,
        problems: Problems::default(),
    })
}

/// The clock an access level's days are read on: the site's where all its doors are,
/// else (doors at sites in different timezones, or no level) the page's `page`.
pub(super) fn level_zone(snapshot: &Snapshot, level_id: Option<i64>, page: Tz) -> Tz {
    level_id
        .and_then(|id| snapshot.level_timezone(id))
        .unwrap_or(page)
}

/// The end of a calendar day on the site's clock: access "until 2027-03-31" lasts all day.
pub fn end_of_day(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    date.succ_opt()?
        .and_hms_opt(0, 0, 0)?
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// Renames the fields of a nested input's errors to the form's own field names.
fn rename_fields(errors: FieldErrors, renames: &[(&str, &str)]) -> FieldErrors {
    let mut out = FieldErrors::default();
    for (field, messages) in errors.0 {
        let name = renames
            .iter()
            .find(|(from, _)| *from == field)
            .map_or(field.as_str(), |(_, to)| *to)
            .to_owned();
        for m in messages {
            out.add(name.clone(), m);
        }
    }
    out
}

/// POST /people
pub async fn create(
    state: web::Data<AppState>,
    posted: Posted<NewPersonForm>,
) -> Result<HttpResponse, PageError> {
    // Before validating: a role that may not add people learns nothing from the messages.
    posted.viewer.may_change_policy()?;
    let form = posted.form.clone();
    let page_tz = Chrome::new(&state, &posted.viewer, Section::People).timezone;
    let mut problems = FieldErrors::default();
    let level_id = match form.level_id.trim() {
        "" => None,
        text => match text.parse::<i64>() {
            Ok(id) => Some(id),
            Err(_) => {
                problems.add("level_id", "choose an access level from the list");
                None
            }
        },
    };
    let tz = level_zone(&state.live.snapshot(), level_id, page_tz);
    let valid_until = match form.valid_until.trim() {
        "" => None,
        text => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            Ok(date) => end_of_day(date, tz),
            Err(_) => {
                problems.add("valid_until", "enter a date like 2027-03-31");
                None
            }
        },
    };
    if valid_until.is_some() && level_id.is_none() {
        problems.add("valid_until", "choose an access level for this date to end");
    }
    let result = if problems.is_empty() {
        let form = form.clone();
        posted
            .change_policy(&state, move |conn, ctx| {
                crate::store::write_transaction(conn, |conn| {
                    create_person(conn, &form, level_id, valid_until, ctx)
                })
                .map_err(ApiError::from)
            })
            .await
    } else {
        Err(ApiError::Invalid(problems))
    };
    match result {
        Ok((id, said)) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            &format!("/people/{id}"),
            Notice::done(said),
        )),
        Err(ApiError::Invalid(fields)) => page_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewPage {
                chrome: Chrome::new(&state, &posted.viewer, Section::People),
                form: posted.form,
                levels: level_choices(&state).await?,
                problems: Problems(fields),
            },
        ),
        Err(other) => Err(other.into()),
    }
}

/// The person, their card and their access, all or nothing; returns the person's id and
/// what was done, in words.
fn create_person(
    conn: &mut crate::store::DbConnection,
    form: &NewPersonForm,
    level_id: Option<i64>,
    valid_until: Option<DateTime<Utc>>,
    ctx: &ChangeContext<'_>,
) -> Result<(i64, String), ChangeError> {
    let person = entities::create::<People>(
        conn,
        PersonInput {
            employee_id: form.employee_id.trim().to_owned(),
            name: form.name.trim().to_owned(),
            department: form.department.trim().to_owned(),
            title: String::new(),
            manager_id: None,
            person_type: if form.person_type.is_empty() {
                "employee".to_owned()
            } else {
                form.person_type.clone()
            },
            status: "active".to_owned(),
            valid_from: None,
            valid_until: None,
            notes: String::new(),
        },
        ctx,
    )?;
    let mut said = format!("{} added", person.name);
    let mut errors = FieldErrors::default();
    if !form.card.trim().is_empty() {
        let card = typed_card(&form.card)
            .and_then(|card| cards::issue(conn, card.input(person.id, None), ctx));
        match card {
            Err(ChangeError::Invalid(fields)) => {
                errors.0.extend(rename_fields(fields, CARD_FIELDS).0);
            }
            Err(other) => return Err(other),
            Ok((card, issued)) => said.push_str(&format!(
                ", with {}{}",
                Credentials::label(&card),
                reissue_note(&issued)
            )),
        }
    }
    if let Some(level_id) = level_id {
        let entitlement = entities::create::<Entitlements>(
            conn,
            EntitlementInput {
                person_id: person.id,
                level_id,
                valid_until,
                justification: "granted when the person was added in the console".to_owned(),
                granted_at: None,
            },
            ctx,
        );
        match entitlement {
            Err(ChangeError::Invalid(fields)) => errors
                .0
                .extend(rename_fields(fields, &[("person_id", "level_id")]).0),
            Err(other) => return Err(other),
            Ok(_) => said.push_str(&format!(
                "; {} granted{}",
                level_name(conn, level_id)?,
                until_note(&form.valid_until)
            )),
        }
    }
    // Any problem undoes the person too: the form comes back with everything typed.
    errors.into_result()?;
    Ok((person.id, said))
}

/// The name of access level `id`, for what a change says it did.
fn level_name(conn: &mut crate::store::DbConnection, id: i64) -> Result<String, ChangeError> {
    Ok(Levels::get(conn, id)?.map_or_else(|| format!("level {id}"), |level| level.name))
}

/// The name of person `id`, for what a change says it did.
fn person_name(conn: &mut crate::store::DbConnection, id: i64) -> Result<String, ChangeError> {
    Ok(People::get(conn, id)?.map_or_else(|| format!("person {id}"), |person| person.name))
}

/// " until 2027-03-31" for an end date typed in a form (the last day it is good for), or
/// nothing.
fn until_note(typed: &str) -> String {
    match typed.trim() {
        "" => String::new(),
        day => format!(" until {day}"),
    }
}

/// What a notice adds when the card issued was a returned (revoked) one.
fn reissue_note(issued: &Issued) -> String {
    match issued {
        Issued::New => String::new(),
        Issued::Reissued { last_holder } => {
            format!(" (returned by {last_holder}, issued again)")
        }
    }
}

/// "Card 04C0A1" from the entity's label "card 04C0A1".
fn card_name(card: &CredentialView) -> String {
    let label = Credentials::label(card);
    let mut chars = label.chars();
    chars.next().map_or(label.clone(), |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

#[derive(Template)]
#[template(path = "people/show.html")]
struct ShowPage {
    chrome: Chrome,
    person: PersonView,
    cards: Vec<CredentialView>,
    /// Each entitlement with its level's name and the clock its end is read on.
    access: Vec<(EntitlementView, String, Tz)>,
    levels: Vec<(i64, String)>,
    events: Vec<FeedItem>,
    /// When this person badges: weekday × hour over the last weeks (SVG).
    heatmap: String,
    /// What was typed into the add-card and grant-access forms, when they came back.
    typed: InlineForms,
    problems: Problems,
}

/// The small forms on a person's page, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct InlineForms {
    #[serde(default)]
    card: String,
    /// Never typed back into a page.
    #[serde(default)]
    pin: String,
    #[serde(default)]
    level_id: String,
    #[serde(default)]
    valid_until: String,
    #[serde(default)]
    justification: String,
}

async fn render_person(
    state: &AppState,
    viewer: &Viewer,
    id: i64,
    typed: InlineForms,
    problems: Problems,
) -> Result<HttpResponse, PageError> {
    let (person, cards, entitlements, rows) = state
        .read(move |conn| {
            let person = People::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no person {id}.")))?;
            let everything = Page {
                offset: 0,
                limit: 1000,
            };
            let (cards, _) = Credentials::list(
                conn,
                &CredentialFilter {
                    person_id: Some(id),
                    ..Default::default()
                },
                everything,
            )?;
            let (entitlements, _) = Entitlements::list(
                conn,
                &EntitlementFilter {
                    person_id: Some(id),
                    level_id: None,
                },
                everything,
            )?;
            let rows = recent(
                conn,
                &EventFilter {
                    person_id: Some(id),
                    ..Default::default()
                },
                20,
            )?;
            Ok((person, cards, entitlements, rows))
        })
        .await?;
    let chrome = Chrome::new(state, viewer, Section::People);
    let heatmap = super::person_heatmap(
        state,
        chrome.history_scope(),
        id,
        &format!("When {} badges", person.name),
        chrome.timezone,
    )
    .await?;
    let snapshot = state.live.snapshot();
    let access = entitlements
        .into_iter()
        .map(|e| {
            let name = snapshot
                .level(e.level_id)
                .map_or_else(|| format!("level {}", e.level_id), |l| l.name.clone());
            let tz = level_zone(&snapshot, Some(e.level_id), chrome.timezone);
            (e, name, tz)
        })
        .collect();
    let events = rows
        .into_iter()
        .map(|row| FeedItem::new(row, &snapshot))
        .collect();
    let status = Problems::status(problems.is_empty());
    page_with_status(
        status,
        &ShowPage {
            chrome,
            person,
            cards,
            access,
            levels: level_choices(state).await?,
            events,
            heatmap,
            typed,
            problems,
        },
    )
}

/// GET /people/{id}
pub async fn show(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    render_person(
        &state,
        &viewer,
        id.into_inner(),
        InlineForms::default(),
        Problems::default(),
    )
    .await
}

/// Runs a change for a person's page: on invalid input the page comes back with the
/// messages beside the form that was used; otherwise back to the page, which says what
/// the change did (the text `f` returns).
async fn change_on_person_page<F>(
    state: web::Data<AppState>,
    posted: Posted<InlineForms>,
    person_id: i64,
    renames: &'static [(&'static str, &'static str)],
    f: F,
) -> Result<HttpResponse, PageError>
where
    F: FnOnce(
            &mut crate::store::DbConnection,
            &ChangeContext<'_>,
            &InlineForms,
        ) -> Result<String, ChangeError>
        + Send
        + 'static,
{
    let typed = posted.form.clone();
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            f(conn, ctx, &typed).map_err(ApiError::from)
        })
        .await;
    match result {
        Ok(said) => Ok(see_other_saying(
            &state,
            &posted.viewer,
            &format!("/people/{person_id}"),
            Notice::done(said),
        )),
        Err(ApiError::Invalid(fields)) => {
            let typed = InlineForms {
                pin: String::new(),
                ..posted.form
            };
            render_person(
                &state,
                &posted.viewer,
                person_id,
                typed,
                Problems(rename_fields(fields, renames)),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /people/{id}/cards: issues a card to the person.
pub async fn add_card(
    state: web::Data<AppState>,
    posted: Posted<InlineForms>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let person_id = id.into_inner();
    change_on_person_page(
        state,
        posted,
        person_id,
        CARD_FIELDS,
        move |conn, ctx, typed| {
            if typed.card.trim().is_empty() {
                return Err(ChangeError::invalid(
                    "card",
                    "enter the card's number: its UID in hex, or facility:number for a \
                     Wiegand card",
                ));
            }
            let pin = Some(typed.pin.trim().to_owned()).filter(|p| !p.is_empty());
            let card = typed_card(&typed.card)?;
            let (card, issued) = cards::issue(conn, card.input(person_id, pin), ctx)?;
            Ok(format!(
                "{} issued to {}{}",
                card_name(&card),
                person_name(conn, person_id)?,
                reissue_note(&issued)
            ))
        },
    )
    .await
}

/// POST /people/{id}/access: grants an access level, perhaps until a day.
pub async fn grant_access(
    state: web::Data<AppState>,
    posted: Posted<InlineForms>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let person_id = id.into_inner();
    let page_tz = Chrome::new(&state, &posted.viewer, Section::People).timezone;
    let level_id = posted.form.level_id.trim().parse::<i64>().ok();
    let tz = level_zone(&state.live.snapshot(), level_id, page_tz);
    change_on_person_page(
        state,
        posted,
        person_id,
        &[("person_id", "level_id")],
        move |conn, ctx, typed| {
            let mut errors = FieldErrors::default();
            if level_id.is_none() {
                errors.add("level_id", "choose an access level from the list");
            }
            let valid_until = match typed.valid_until.trim() {
                "" => None,
                text => {
                    let day = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok();
                    if day.is_none() {
                        errors.add("valid_until", "enter a date like 2027-03-31");
                    }
                    day.and_then(|d| end_of_day(d, tz))
                }
            };
            errors.into_result()?;
            let level_id = level_id.unwrap_or_default();
            entities::create::<Entitlements>(
                conn,
                EntitlementInput {
                    person_id,
                    level_id,
                    valid_until,
                    justification: typed.justification.trim().to_owned(),
                    granted_at: None,
                },
                ctx,
            )?;
            Ok(format!(
                "{} granted to {}{}",
                level_name(conn, level_id)?,
                person_name(conn, person_id)?,
                until_note(&typed.valid_until)
            ))
        },
    )
    .await
}

/// The credential fields that the console's one "Card number" field stands for.
const CARD_FIELDS: &[(&str, &str)] = &[
    ("card_uid", "card"),
    ("facility", "card"),
    ("card_number", "card"),
    ("kind", "card"),
    ("person_id", "card"),
];

/// A card as typed in the console: a UID in hex (`04A1B2C3`) or a Wiegand card as
/// `facility:number` (`12:34567`), the way card lists show them.
enum TypedCard {
    Uid(String),
    Wiegand { facility: i32, number: i64 },
}

fn typed_card(text: &str) -> Result<TypedCard, ChangeError> {
    let text = text.trim();
    let Some((facility, number)) = text.split_once(':') else {
        return Ok(TypedCard::Uid(text.to_owned()));
    };
    // Ranges checked here too, so that the message says which half is wrong.
    match (facility.trim().parse::<u16>(), number.trim().parse::<u32>()) {
        (Ok(facility), Ok(number)) => Ok(TypedCard::Wiegand {
            facility: i32::from(facility),
            number: i64::from(number),
        }),
        (Err(_), _) => Err(ChangeError::invalid(
            "card",
            "a Wiegand card is facility:number, like 12:34567; the facility code is a \
             whole number from 0 to 65535",
        )),
        (_, Err(_)) => Err(ChangeError::invalid(
            "card",
            "a Wiegand card is facility:number, like 12:34567; the card number is a whole \
             number from 0 to 4294967295",
        )),
    }
}

impl TypedCard {
    fn input(self, person_id: i64, pin: Option<String>) -> CredentialInput {
        let (kind, card_uid, facility, card_number) = match self {
            TypedCard::Uid(uid) => ("card", Some(uid), None, None),
            TypedCard::Wiegand { facility, number } => {
                ("wiegand", None, Some(facility), Some(number))
            }
        };
        CredentialInput {
            person_id,
            kind: kind.to_owned(),
            card_uid,
            facility,
            card_number,
            pin,
            pin_hash: None,
            status: "active".to_owned(),
            valid_until: None,
        }
    }
}

#[derive(Deserialize)]
pub struct CardForm {
    /// `active`, `lost`, `stolen` or `revoked`; the card's own when absent.
    #[serde(default)]
    status: Option<String>,
    /// A new PIN; an empty one removes the PIN; absent leaves it.
    #[serde(default)]
    pin: Option<String>,
}

/// Changes a card's status or PIN, leaving the rest as it is.
async fn change_card(
    state: web::Data<AppState>,
    posted: Posted<CardForm>,
    id: i64,
) -> Result<HttpResponse, PageError> {
    let (status, pin) = (posted.form.status.clone(), posted.form.pin.clone());
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            let card = Credentials::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no card {id}.")))?;
            let person_id = card.person_id;
            let input = CredentialInput {
                person_id,
                kind: card.kind,
                card_uid: card.card_uid,
                facility: card.facility,
                card_number: card.card_number,
                pin: pin.map(|p| p.trim().to_owned()),
                pin_hash: None,
                status: status.unwrap_or(card.status),
                valid_until: card.valid_until,
            };
            let status_form = input.pin.is_none();
            let (status, had_pin) = (input.status.clone(), card.has_pin);
            let removes_pin = input.pin.as_deref() == Some("");
            let saved = saved::update::<Credentials>(conn, id, input, ctx)?;
            let card = Credentials::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no card {id}.")))?;
            let name = card_name(&card);
            let holder = person_name(conn, person_id)?;
            let said = if status_form {
                match status.as_str() {
                    "active" => format!("{name} of {holder} is active again"),
                    "revoked" => format!(
                        "{name} of {holder} revoked: it opens nothing, and can be issued again"
                    ),
                    other => format!("{name} of {holder} marked {other}: it opens nothing"),
                }
            } else if removes_pin {
                if had_pin {
                    format!("PIN of {name} ({holder}) removed")
                } else {
                    format!("{name} ({holder}) has no PIN")
                }
            } else {
                format!("PIN of {name} ({holder}) set")
            };
            Ok((person_id, saved, said))
        })
        .await;
    match result {
        Ok((person_id, saved, said)) => Ok(saved::see_page(
            &state,
            &posted.viewer,
            &format!("/people/{person_id}"),
            saved,
            said,
        )),
        // A PIN of the wrong shape: said beside the card's PIN field.
        Err(ApiError::Invalid(fields)) => {
            let person_id = state
                .read(move |conn| {
                    Credentials::get(conn, id)?
                        .map(|c| c.person_id)
                        .ok_or_else(|| ApiError::NotFound(format!("There is no card {id}.")))
                })
                .await?;
            let mut problems = FieldErrors::default();
            for (field, messages) in fields.0 {
                let field = if field == "pin" {
                    format!("pin-{id}")
                } else {
                    field
                };
                for m in messages {
                    problems.add(field.clone(), m);
                }
            }
            render_person(
                &state,
                &posted.viewer,
                person_id,
                InlineForms::default(),
                Problems(problems),
            )
            .await
        }
        Err(other) => Err(other.into()),
    }
}

/// POST /cards/{id}/status: marks a card lost or stolen, revokes it, or makes it active.
pub async fn set_card_status(
    state: web::Data<AppState>,
    posted: Posted<CardForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    change_card(state, posted, id.into_inner()).await
}

/// POST /cards/{id}/pin: sets the card's PIN (for card-and-PIN doors), or removes it.
pub async fn set_card_pin(
    state: web::Data<AppState>,
    posted: Posted<CardForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    change_card(state, posted, id.into_inner()).await
}

/// POST /access/{id}/remove: takes an access level away.
pub async fn remove_access(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let (person_id, said) = posted
        .change_policy(&state, move |conn, ctx| {
            let entitlement = Entitlements::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no entitlement {id}.")))?;
            entities::delete::<Entitlements>(conn, id, ctx)?;
            let said = format!(
                "{} taken away from {}",
                level_name(conn, entitlement.level_id)?,
                person_name(conn, entitlement.person_id)?
            );
            Ok((entitlement.person_id, said))
        })
        .await?;
    Ok(see_other_saying(
        &state,
        &posted.viewer,
        &format!("/people/{person_id}"),
        Notice::done(said),
    ))
}

#[derive(Deserialize)]
pub struct NoFields {}

async fn set_status(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: i64,
    status: &'static str,
) -> Result<HttpResponse, PageError> {
    let (saved, name) = posted
        .change_policy(&state, move |conn, ctx| {
            let person = People::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no person {id}.")))?;
            let name = person.name.clone();
            let input = PersonInput {
                employee_id: person.employee_id,
                name: person.name,
                department: person.department,
                title: person.title,
                manager_id: person.manager_id,
                person_type: person.person_type,
                status: status.to_owned(),
                valid_from: person.valid_from,
                valid_until: person.valid_until,
                notes: person.notes,
            };
            Ok((saved::update::<People>(conn, id, input, ctx)?, name))
        })
        .await?;
    let said = match status {
        "suspended" => format!("{name} suspended: denied at every door from the next swipe"),
        "terminated" => format!("{name} terminated: denied at every door from the next swipe"),
        _ => format!("{name} reinstated: their cards and access apply again"),
    };
    Ok(saved::see_page(
        &state,
        &posted.viewer,
        &format!("/people/{id}"),
        saved,
        said,
    ))
}

/// POST /people/{id}/suspend: denied at every door from the next swipe on.
pub async fn suspend(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    set_status(state, posted, id.into_inner(), "suspended").await
}

/// POST /people/{id}/reinstate
pub async fn reinstate(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    set_status(state, posted, id.into_inner(), "active").await
}

/// POST /people/{id}/terminate
pub async fn terminate(
    state: web::Data<AppState>,
    posted: Posted<NoFields>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    set_status(state, posted, id.into_inner(), "terminated").await
}

/// What the edit form holds, as typed.
#[derive(Deserialize, Default, Clone)]
pub struct EditPersonForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    employee_id: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    person_type: String,
    #[serde(default)]
    notes: String,
}

#[derive(Template)]
#[template(path = "people/edit.html")]
struct EditPage {
    chrome: Chrome,
    id: i64,
    form: EditPersonForm,
    problems: Problems,
}

/// GET /people/{id}/edit
pub async fn edit_form(
    state: web::Data<AppState>,
    viewer: Viewer,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    viewer.may_change_policy()?;
    let id = id.into_inner();
    let person = state
        .read(move |conn| {
            People::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no person {id}.")))
        })
        .await?;
    page(&EditPage {
        chrome: Chrome::new(&state, &viewer, Section::People),
        id,
        form: EditPersonForm {
            name: person.name,
            employee_id: person.employee_id,
            department: person.department,
            title: person.title,
            person_type: person.person_type,
            notes: person.notes,
        },
        problems: Problems::default(),
    })
}

/// POST /people/{id}/edit
pub async fn edit(
    state: web::Data<AppState>,
    posted: Posted<EditPersonForm>,
    id: web::Path<i64>,
) -> Result<HttpResponse, PageError> {
    let id = id.into_inner();
    let form = posted.form.clone();
    let result = posted
        .change_policy(&state, move |conn, ctx| {
            let person = People::get(conn, id)?
                .ok_or_else(|| ApiError::NotFound(format!("There is no person {id}.")))?;
            let input = PersonInput {
                employee_id: form.employee_id.trim().to_owned(),
                name: form.name.trim().to_owned(),
                department: form.department.trim().to_owned(),
                title: form.title.trim().to_owned(),
                manager_id: person.manager_id,
                person_type: form.person_type,
                status: person.status,
                valid_from: person.valid_from,
                valid_until: person.valid_until,
                notes: form.notes,
            };
            Ok(saved::update::<People>(conn, id, input, ctx)?)
        })
        .await;
    match result {
        Ok(saved) => Ok(saved::see_page(
            &state,
            &posted.viewer,
            &format!("/people/{id}"),
            saved,
            format!("{} saved", posted.form.name.trim()),
        )),
        Err(ApiError::Invalid(fields)) => page_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &EditPage {
                chrome: Chrome::new(&state, &posted.viewer, Section::People),
                id,
                form: posted.form,
                problems: Problems(fields),
            },
        ),
        Err(other) => Err(other.into()),
    }
}
