//! Entitlements: a person holding an access level, with who granted it, when, why, and an
//! optional expiry for just-in-time access.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ChangeContext, ChangeError, Entity, FieldErrors, Page, require_ref};
use crate::clock::{stored, utc};
use crate::store::DbConnection;
use crate::store::rows::EntitlementRow;
use crate::store::schema::{access_levels, entitlements, people};

pub struct Entitlements;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct EntitlementView {
    pub id: i64,
    pub person_id: i64,
    pub level_id: i64,
    /// The admin who granted it.
    pub granted_by: String,
    pub granted_at: DateTime<Utc>,
    /// After this instant the entitlement no longer grants anything.
    pub valid_until: Option<DateTime<Utc>>,
    pub justification: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EntitlementInput {
    pub person_id: i64,
    pub level_id: i64,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
    #[serde(default)]
    pub justification: String,
    /// When a new entitlement was granted, if before now: a site file's `granted_at`,
    /// from a previous access system. Not part of the API's body (an API client grants
    /// now); an existing entitlement keeps its own.
    #[serde(skip)]
    pub granted_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EntitlementFilter {
    pub person_id: Option<i64>,
    pub level_id: Option<i64>,
}

impl From<EntitlementRow> for EntitlementView {
    fn from(r: EntitlementRow) -> Self {
        EntitlementView {
            id: r.id,
            person_id: r.person_id,
            level_id: r.level_id,
            granted_by: r.granted_by,
            granted_at: utc(r.granted_at),
            valid_until: r.valid_until.map(utc),
            justification: r.justification,
        }
    }
}

impl Entity for Entitlements {
    const NAME: &'static str = "entitlement";
    const COLLECTION: &'static str = "entitlements";
    type View = EntitlementView;
    type Input = EntitlementInput;
    type Filter = EntitlementFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &EntitlementFilter,
        page: Page,
    ) -> QueryResult<(Vec<EntitlementView>, i64)> {
        let query = || {
            let mut q = entitlements::table.into_boxed();
            if let Some(person) = filter.person_id {
                q = q.filter(entitlements::person_id.eq(person));
            }
            if let Some(level) = filter.level_id {
                q = q.filter(entitlements::level_id.eq(level));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(entitlements::id)
            .offset(page.offset)
            .limit(page.limit)
            .select(EntitlementRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(EntitlementView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<EntitlementView>> {
        entitlements::table
            .find(id)
            .select(EntitlementRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(EntitlementView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: EntitlementInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        errors.optional_text("justification", &input.justification, 2000);
        let person =
            diesel::select(exists(people::table.find(input.person_id))).get_result(conn)?;
        require_ref(&mut errors, "person_id", "person", input.person_id, person);
        let level =
            diesel::select(exists(access_levels::table.find(input.level_id))).get_result(conn)?;
        require_ref(
            &mut errors,
            "level_id",
            "access level",
            input.level_id,
            level,
        );
        let taken: Option<i64> = entitlements::table
            .filter(entitlements::person_id.eq(input.person_id))
            .filter(entitlements::level_id.eq(input.level_id))
            .select(entitlements::id)
            .first(conn)
            .optional()?;
        if taken.is_some_and(|other| Some(other) != id) {
            errors.add("level_id", "this person already holds this access level");
        }
        if id.is_none()
            && let Some(granted_at) = input.granted_at
            && granted_at > ctx.now
        {
            errors.add("granted_at", "is in the future");
        }
        errors.into_result()?;
        let values = (
            entitlements::person_id.eq(input.person_id),
            entitlements::level_id.eq(input.level_id),
            entitlements::valid_until.eq(input.valid_until.map(stored)),
            entitlements::justification.eq(&input.justification),
        );
        match id {
            None => Ok(diesel::insert_into(entitlements::table)
                .values((
                    values,
                    entitlements::granted_by.eq(ctx.provenance.actor()),
                    entitlements::granted_at
                        .eq(input.granted_at.map_or_else(|| ctx.stamp(), stored)),
                ))
                .returning(entitlements::id)
                .get_result(conn)?),
            Some(id) => {
                diesel::update(entitlements::table.find(id))
                    .set(values)
                    .execute(conn)?;
                Ok(id)
            }
        }
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(entitlements::table.find(id)).execute(conn)
    }

    fn person_of(view: &EntitlementView) -> Option<i64> {
        Some(view.person_id)
    }

    fn label(view: &EntitlementView) -> String {
        format!(
            "entitlement of person {} to level {}",
            view.person_id, view.level_id
        )
    }
}

/// Whether writing `input` over the stored row would change nothing (who granted it and
/// when are kept by `write` anyway): the site file skips such an entry without a write.
pub fn unchanged(row: &EntitlementRow, input: &EntitlementInput) -> bool {
    row.person_id == input.person_id
        && row.level_id == input.level_id
        && row.valid_until == input.valid_until.map(stored)
        && row.justification == input.justification
}
