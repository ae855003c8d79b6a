//! People: employees, contractors, visitors and non-human badge holders, with their status
//! and validity window. Their cards are credentials; their access is entitlements.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    ChangeContext, ChangeError, Entity, FieldErrors, Page, like_pattern, lower, require_ref,
};
use crate::clock::{stored, utc};
use crate::policy::PersonStatus;
use crate::store::DbConnection;
use crate::store::rows::PersonRow;
use crate::store::schema::people;

pub struct People;

/// What kind of badge holder a person is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonType {
    Employee,
    Contractor,
    Visitor,
    NonHuman,
}

impl PersonType {
    pub const ALL: [&'static str; 4] = ["employee", "contractor", "visitor", "non_human"];
}

impl std::str::FromStr for PersonType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "employee" => Ok(PersonType::Employee),
            "contractor" => Ok(PersonType::Contractor),
            "visitor" => Ok(PersonType::Visitor),
            "non_human" => Ok(PersonType::NonHuman),
            other => Err(format!(
                "'{other}' is not a person type; use one of {}",
                PersonType::ALL.join(", ")
            )),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct PersonView {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
    pub department: String,
    pub title: String,
    pub manager_id: Option<i64>,
    /// `employee`, `contractor`, `visitor` or `non_human`.
    pub person_type: String,
    /// `active`, `suspended` or `terminated`.
    pub status: String,
    pub valid_from: Option<DateTime<Utc>>,
    pub valid_until: Option<DateTime<Utc>>,
    /// Free text kept for admins. Never interpreted.
    pub notes: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PersonInput {
    pub employee_id: String,
    pub name: String,
    #[serde(default)]
    pub department: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub manager_id: Option<i64>,
    #[serde(default = "default_person_type")]
    pub person_type: String,
    #[serde(default = "default_status")]
    pub status: String,
    #[serde(default)]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub notes: String,
}

fn default_person_type() -> String {
    "employee".to_owned()
}
fn default_status() -> String {
    PersonStatus::Active.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PersonFilter {
    /// Case-insensitive part of the name or employee id.
    pub q: Option<String>,
    pub department: Option<String>,
    /// `active`, `suspended` or `terminated`.
    pub status: Option<String>,
    pub person_type: Option<String>,
    pub manager_id: Option<i64>,
}

impl From<PersonRow> for PersonView {
    fn from(r: PersonRow) -> Self {
        PersonView {
            id: r.id,
            employee_id: r.employee_id,
            name: r.name,
            department: r.department,
            title: r.title,
            manager_id: r.manager_id,
            person_type: r.person_type,
            status: r.status,
            valid_from: r.valid_from.map(utc),
            valid_until: r.valid_until.map(utc),
            notes: r.notes,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

impl People {
    /// The people with these ids, in the order given (ids not found are left out): the
    /// rows behind a page the live snapshot's directory chose.
    pub fn in_order(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<Vec<PersonView>> {
        let rows: Vec<PersonRow> = people::table
            .filter(people::id.eq_any(ids))
            .select(PersonRow::as_select())
            .load(conn)?;
        let mut by_id: std::collections::HashMap<i64, PersonRow> =
            rows.into_iter().map(|r| (r.id, r)).collect();
        Ok(ids
            .iter()
            .filter_map(|id| by_id.remove(id))
            .map(PersonView::from)
            .collect())
    }
}

impl Entity for People {
    const NAME: &'static str = "person";
    const COLLECTION: &'static str = "people";
    type View = PersonView;
    type Input = PersonInput;
    type Filter = PersonFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &PersonFilter,
        page: Page,
    ) -> QueryResult<(Vec<PersonView>, i64)> {
        let query = || {
            let mut q = people::table.into_boxed();
            if let Some(text) = &filter.q {
                let pattern = like_pattern(text);
                q = q.filter(
                    lower(people::name)
                        .like(pattern.clone())
                        .escape('\\')
                        .or(lower(people::employee_id).like(pattern).escape('\\')),
                );
            }
            if let Some(department) = &filter.department {
                q = q.filter(people::department.eq(department.clone()));
            }
            if let Some(status) = &filter.status {
                q = q.filter(people::status.eq(status.clone()));
            }
            if let Some(kind) = &filter.person_type {
                q = q.filter(people::person_type.eq(kind.clone()));
            }
            if let Some(manager) = filter.manager_id {
                q = q.filter(people::manager_id.eq(manager));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order((people::name, people::id))
            .offset(page.offset)
            .limit(page.limit)
            .select(PersonRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(PersonView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<PersonView>> {
        people::table
            .find(id)
            .select(PersonRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(PersonView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: PersonInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.text("employee_id", &input.employee_id, 64);
        errors.text("name", &input.name, 200);
        errors.optional_text("department", &input.department, 200);
        errors.optional_text("title", &input.title, 200);
        errors.optional_text("notes", &input.notes, 4000);
        errors.parse::<PersonType>("person_type", &input.person_type);
        let status = errors.canonical::<PersonStatus>("status", &input.status);
        if let (Some(from), Some(until)) = (input.valid_from, input.valid_until)
            && until <= from
        {
            errors.add("valid_until", "must be after valid_from");
        }
        if let Some(manager) = input.manager_id {
            if Some(manager) == id {
                errors.add("manager_id", "a person cannot be their own manager");
            } else {
                let found = diesel::select(exists(people::table.find(manager))).get_result(conn)?;
                require_ref(&mut errors, "manager_id", "person", manager, found);
                if let Some(id) = id
                    && found
                    && manages_through(conn, manager, id)?
                {
                    errors.add(
                        "manager_id",
                        format!(
                            "person {manager} reports to this person (directly or through others); managers cannot form a cycle"
                        ),
                    );
                }
            }
        }
        let employee_id = input.employee_id.trim().to_owned();
        let taken: Option<i64> = people::table
            .filter(people::employee_id.eq(&employee_id))
            .select(people::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add(
                "employee_id",
                format!("another person already has employee id '{employee_id}'"),
            );
        }
        errors.into_result()?;
        let now = ctx.stamp();
        let values = (
            people::employee_id.eq(&employee_id),
            people::name.eq(input.name.trim()),
            people::department.eq(input.department.trim()),
            people::title.eq(input.title.trim()),
            people::manager_id.eq(input.manager_id),
            people::person_type.eq(&input.person_type),
            people::status.eq(&status),
            people::valid_from.eq(input.valid_from.map(stored)),
            people::valid_until.eq(input.valid_until.map(stored)),
            people::notes.eq(&input.notes),
            people::updated_at.eq(now),
        );
        match id {
            None => Ok(diesel::insert_into(people::table)
                .values((values, people::created_at.eq(now)))
                .returning(people::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(people::table.find(id))
                    .set(values)
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(people::table.find(id)).execute(conn)
    }

    fn label(view: &PersonView) -> String {
        format!("person {}", view.employee_id)
    }

    fn person_of(view: &PersonView) -> Option<i64> {
        Some(view.id)
    }
}

/// True when `person` is `candidate` or reports to them through the chain of managers.
/// Refusing such a manager keeps the chain a tree, which the site file needs (its import
/// writes managers before their reports). A cycle already stored is walked once, not forever.
fn manages_through(conn: &mut DbConnection, person: i64, candidate: i64) -> QueryResult<bool> {
    let mut seen = std::collections::HashSet::new();
    let mut current = Some(person);
    while let Some(p) = current {
        if p == candidate {
            return Ok(true);
        }
        if !seen.insert(p) {
            return Ok(false);
        }
        current = people::table
            .find(p)
            .select(people::manager_id)
            .first::<Option<i64>>(conn)
            .optional()?
            .flatten();
    }
    Ok(false)
}

/// Finds a person id by employee id (the site file's natural key).
pub fn id_by_employee_id(conn: &mut DbConnection, employee_id: &str) -> QueryResult<Option<i64>> {
    people::table
        .filter(people::employee_id.eq(employee_id))
        .select(people::id)
        .first(conn)
        .optional()
}

/// Whether writing `input` over the stored row would change nothing, compared as `write`
/// stores it (trimmed texts, the status's canonical spelling, times to the microsecond):
/// the site file and the people CSV skip such an entry without a write. A value it cannot
/// read counts as a change, so that `write` judges and reports it.
pub fn unchanged(row: &PersonRow, input: &PersonInput) -> bool {
    row.employee_id == input.employee_id.trim()
        && row.name == input.name.trim()
        && row.department == input.department.trim()
        && row.title == input.title.trim()
        && row.manager_id == input.manager_id
        && row.person_type == input.person_type
        && input
            .status
            .parse::<PersonStatus>()
            .is_ok_and(|status| row.status == status.as_str())
        && row.valid_from == input.valid_from.map(stored)
        && row.valid_until == input.valid_until.map(stored)
        && row.notes == input.notes
}
