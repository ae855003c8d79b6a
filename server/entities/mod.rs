//! The admin-managed entities of the access policy (sites … entitlements): their API views,
//! inputs, validation and queries, and the one audited path by which any of them changes.

pub mod credentials;
pub mod doors;
pub mod entitlements;
pub mod holidays;
pub mod levels;
pub mod people;
pub mod readers;
pub mod schedules;
pub mod sites;
pub mod zones;

use std::collections::BTreeMap;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::identity::provenance::Provenance;
use crate::store::DbConnection;
use crate::store::audit::{self, AuditEntry};

/// Per-field validation messages, keyed by the field's name in the input.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, ToSchema)]
#[serde(transparent)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.entry(field.into()).or_default().push(message.into());
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when nothing was added; the collected errors otherwise.
    pub fn into_result(self) -> Result<(), ChangeError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(ChangeError::Invalid(self))
        }
    }

    /// Parses an enumerated text field, recording the parser's message on failure.
    pub fn parse<T>(&mut self, field: &str, value: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match value.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.add(field, e.to_string());
                None
            }
        }
    }

    /// Parses an enumerated text field and returns its canonical spelling (what is stored);
    /// on failure records the parser's message and returns the input unchanged.
    pub fn canonical<T>(&mut self, field: &str, value: &str) -> String
    where
        T: FromStr + std::fmt::Display,
        T::Err: std::fmt::Display,
    {
        self.parse::<T>(field, value)
            .map(|v| v.to_string())
            .unwrap_or_else(|| value.to_owned())
    }

    /// Records an error unless the trimmed text has 1..=max characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        let len = value.trim().chars().count();
        if len == 0 {
            self.add(field, "must not be empty");
        } else if len > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    /// Records an error when a free-text field is longer than max characters.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        if value.chars().count() > max {
            self.add(field, format!("must be at most {max} characters"));
        }
    }

    /// Prefixes every field with `prefix.` (for nested inputs such as schedule windows).
    pub fn nest(&mut self, prefix: &str, inner: FieldErrors) {
        for (field, messages) in inner.0 {
            for m in messages {
                self.add(format!("{prefix}.{field}"), m);
            }
        }
    }
}

/// Why an admin change was refused or failed. The web edge maps each to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("invalid input: {0:?}")]
    Invalid(FieldErrors),
    #[error("{entity} {id} does not exist")]
    NotFound { entity: &'static str, id: i64 },
    #[error("{0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Db(#[from] diesel::result::Error),
}

impl ChangeError {
    pub fn invalid(field: &str, message: impl Into<String>) -> ChangeError {
        let mut e = FieldErrors::default();
        e.add(field, message);
        ChangeError::Invalid(e)
    }
}

/// Paging of a list: `offset` rows skipped, at most `limit` returned (1..=1000, default 50).
#[derive(Debug, Clone, Copy, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    #[serde(default)]
    pub offset: i64,
    #[serde(default = "Page::default_limit")]
    pub limit: i64,
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: Page::default_limit(),
        }
    }
}

impl Page {
    fn default_limit() -> i64 {
        50
    }

    pub fn validate(self) -> Result<Page, ChangeError> {
        let mut errors = FieldErrors::default();
        if self.offset < 0 {
            errors.add("offset", "must be 0 or more");
        }
        if !(1..=1000).contains(&self.limit) {
            errors.add("limit", "must be between 1 and 1000");
        }
        errors.into_result().map(|()| self)
    }
}

/// One page of a list and how many rows match in all.
#[derive(Debug, Serialize)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// Who makes a change (who asked, who approved, through what) and when; carried into the
/// audit log, and as its actor text into `granted_by` fields.
#[derive(Debug, Clone)]
pub struct ChangeContext<'a> {
    pub provenance: &'a Provenance,
    pub now: DateTime<Utc>,
}

impl ChangeContext<'_> {
    /// `now` as stored: UTC, microseconds.
    pub fn stamp(&self) -> NaiveDateTime {
        self.now.naive_utc().trunc_subsecs(6)
    }
}

/// An entity that admins manage through the API, the site file and the CLI.
pub trait Entity: 'static {
    /// Singular name, used in the audit log and messages: "person".
    const NAME: &'static str;
    /// Collection name, used in URLs: "people".
    const COLLECTION: &'static str;
    type View: Serialize + ToSchema + Send + 'static;
    type Input: DeserializeOwned + Serialize + ToSchema + Send + 'static;
    type Filter: DeserializeOwned + IntoParams + Default + Send + 'static;

    fn list(
        conn: &mut DbConnection,
        filter: &Self::Filter,
        page: Page,
    ) -> diesel::QueryResult<(Vec<Self::View>, i64)>;
    fn get(conn: &mut DbConnection, id: i64) -> diesel::QueryResult<Option<Self::View>>;
    /// Validates the input and inserts it (id None) or replaces entity `id` with it.
    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: Self::Input,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError>;
    fn delete(conn: &mut DbConnection, id: i64) -> diesel::QueryResult<usize>;
    /// A short human label for audit summaries: `person E1001 (Ada Lovelace)`.
    fn label(view: &Self::View) -> String;
    /// Compares what `input` would write over entity `id` that its view does not show (a
    /// card's PIN, stored only as a hash) with what is stored: takes out of `input` what is
    /// already there, so that writing it keeps it as it is, and names each such thing that
    /// would change ("PIN changed"), for `upsert` (the view alone would call the write no
    /// change and roll it back) and the audit summary. Never the values themselves.
    fn unseen_changes(
        _conn: &mut DbConnection,
        _id: i64,
        _input: &mut Self::Input,
    ) -> Result<Vec<&'static str>, ChangeError> {
        Ok(Vec::new())
    }
    /// The person whose own rows this is (a person) or belongs to (their card, their
    /// entitlement): a change to it touches that person alone, so the API lays the
    /// person's rows over the live snapshot instead of compiling the whole policy. None
    /// for everything else.
    fn person_of(_view: &Self::View) -> Option<i64> {
        None
    }
    /// Fills in what is shown once, on creation only (a reader's secret).
    fn reveal_on_create(
        _conn: &mut DbConnection,
        _id: i64,
        _view: &mut Self::View,
    ) -> diesel::QueryResult<()> {
        Ok(())
    }
}

fn json_of<T: Serialize>(view: &T) -> Option<serde_json::Value> {
    serde_json::to_value(view).ok()
}

fn not_found<E: Entity>(id: i64) -> ChangeError {
    ChangeError::NotFound {
        entity: E::NAME,
        id,
    }
}

/// Refuses an input holding a NUL anywhere (a name, an id, a nested field), naming each
/// field: every way in (API, console, site file, CSV) writes through here.
fn refuse_nul<T: Serialize>(input: &T) -> Result<(), ChangeError> {
    let Ok(value) = serde_json::to_value(input) else {
        return Ok(());
    };
    let mut errors = FieldErrors::default();
    for path in crate::input::nul_paths(&value) {
        errors.add(path, crate::input::NUL);
    }
    errors.into_result()
}

/// Creates an entity and its audit entry in one transaction.
pub fn create<E: Entity>(
    conn: &mut DbConnection,
    input: E::Input,
    ctx: &ChangeContext<'_>,
) -> Result<E::View, ChangeError> {
    refuse_nul(&input)?;
    crate::store::write_transaction(conn, |conn| {
        let id = E::write(conn, None, input, ctx)?;
        let mut after = E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))?;
        record::<E>(conn, ctx, "create", id, None, Some(&after), &[])?;
        E::reveal_on_create(conn, id, &mut after)?;
        Ok(after)
    })
}

/// Replaces an entity and records before and after in one transaction; a replacement
/// that changes nothing writes nothing and is not audited (see `upsert`). Returns the
/// entity as it now is.
pub fn update<E: Entity>(
    conn: &mut DbConnection,
    id: i64,
    input: E::Input,
    ctx: &ChangeContext<'_>,
) -> Result<E::View, ChangeError> {
    let (id, _) = upsert::<E>(conn, Some(id), input, ctx)?;
    E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))
}

/// Deletes an entity that nothing refers to any more, and records what it was.
pub fn delete<E: Entity>(
    conn: &mut DbConnection,
    id: i64,
    ctx: &ChangeContext<'_>,
) -> Result<(), ChangeError> {
    crate::store::write_transaction(conn, |conn| {
        let before = E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))?;
        match E::delete(conn, id) {
            Ok(_) => {}
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::ForeignKeyViolation,
                _,
            )) => {
                return Err(ChangeError::Conflict(format!(
                    "{} is still in use; remove what refers to it first",
                    E::label(&before)
                )));
            }
            Err(e) => return Err(e.into()),
        }
        record::<E>(conn, ctx, "delete", id, Some(&before), None, &[])?;
        Ok(())
    })
}

fn record<E: Entity>(
    conn: &mut DbConnection,
    ctx: &ChangeContext<'_>,
    action: &'static str,
    id: i64,
    before: Option<&E::View>,
    after: Option<&E::View>,
    unseen: &[&'static str],
) -> Result<(), ChangeError> {
    let mut label = after
        .or(before)
        .map(E::label)
        .unwrap_or_else(|| format!("{} {id}", E::NAME));
    if !unseen.is_empty() {
        label = format!("{label} ({})", unseen.join(", "));
    }
    audit::append(
        conn,
        &AuditEntry {
            provenance: ctx.provenance,
            action,
            entity: E::NAME,
            entity_id: Some(id.to_string()),
            summary: format!("{action} {label}"),
            before: before.and_then(json_of),
            after: after.and_then(json_of),
        },
        ctx.now,
    )?;
    Ok(())
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

/// Creates (no id) or replaces (id) an entity, auditing only real changes: rewriting an
/// entity with what it already holds writes nothing, so re-importing a file is a no-op.
/// "What it holds" is its view, and what the view does not show (a card's PIN) as
/// `Entity::unseen_changes` compares it.
pub fn upsert<E: Entity>(
    conn: &mut DbConnection,
    id: Option<i64>,
    input: E::Input,
    ctx: &ChangeContext<'_>,
) -> Result<(i64, Upserted), ChangeError> {
    refuse_nul(&input)?;
    let Some(id) = id else {
        let id = crate::store::write_transaction(conn, |conn| {
            let id = E::write(conn, None, input, ctx)?;
            let after = E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))?;
            record::<E>(conn, ctx, "create", id, None, Some(&after), &[])?;
            Ok::<_, ChangeError>(id)
        })?;
        return Ok((id, Upserted::Created));
    };
    let outcome = crate::store::write_transaction(conn, |conn| {
        let before = E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))?;
        // What the views cannot show (a new PIN) is compared on its own.
        let mut input = input;
        let unseen = E::unseen_changes(conn, id, &mut input)?;
        E::write(conn, Some(id), input, ctx)?;
        let after = E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))?;
        if unseen.is_empty() && without_update_stamp(&before) == without_update_stamp(&after) {
            // Roll the rewrite back: nothing changed, so nothing is written or audited.
            return Err(UpsertAbort::Unchanged);
        }
        record::<E>(
            conn,
            ctx,
            "update",
            id,
            Some(&before),
            Some(&after),
            &unseen,
        )?;
        Ok(())
    });
    match outcome {
        Ok(()) => Ok((id, Upserted::Updated)),
        Err(UpsertAbort::Unchanged) => Ok((id, Upserted::Unchanged)),
        Err(UpsertAbort::Failed(e)) => Err(e),
    }
}

enum UpsertAbort {
    Unchanged,
    Failed(ChangeError),
}

impl From<diesel::result::Error> for UpsertAbort {
    fn from(e: diesel::result::Error) -> Self {
        UpsertAbort::Failed(ChangeError::Db(e))
    }
}

impl From<ChangeError> for UpsertAbort {
    fn from(e: ChangeError) -> Self {
        UpsertAbort::Failed(e)
    }
}

fn without_update_stamp<T: Serialize>(view: &T) -> Option<serde_json::Value> {
    let mut value = serde_json::to_value(view).ok()?;
    if let Some(map) = value.as_object_mut() {
        map.remove("updated_at");
    }
    Some(value)
}

/// Lists one page with the filter applied.
pub fn list<E: Entity>(
    conn: &mut DbConnection,
    filter: &E::Filter,
    page: Page,
) -> Result<Listing<E::View>, ChangeError> {
    let page = page.validate()?;
    let (items, total) = E::list(conn, filter, page)?;
    Ok(Listing {
        items,
        total,
        offset: page.offset,
        limit: page.limit,
    })
}

/// Reads one entity or says it does not exist.
pub fn get<E: Entity>(conn: &mut DbConnection, id: i64) -> Result<E::View, ChangeError> {
    E::get(conn, id)?.ok_or_else(|| not_found::<E>(id))
}

/// Adds a "does not exist" error when `exists` is false.
pub fn require_ref(errors: &mut FieldErrors, field: &str, what: &str, id: i64, exists: bool) {
    if !exists {
        errors.add(field, format!("{what} {id} does not exist"));
    }
}

/// `%text%` for a case-insensitive substring search, with LIKE's wildcards escaped.
pub fn like_pattern(text: &str) -> String {
    let escaped = text
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

diesel::define_sql_function! {
    /// SQL lower(), the same on SQLite and PostgreSQL.
    fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text;
}
