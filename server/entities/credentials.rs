//! Credentials: the cards (raw UID or Wiegand facility + number) a person presents, with an
//! optional PIN kept only as an argon2id hash, and a status for lost or stolen cards.

use chrono::{DateTime, Utc};
use diesel::dsl::exists;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ChangeContext, ChangeError, Entity, FieldErrors, Page, require_ref};
use crate::clock::{stored, utc};
use crate::policy::{CredentialKey, CredentialStatus};
use crate::store::DbConnection;
use crate::store::rows::CredentialRow;
use crate::store::schema::{credentials, people};

pub struct Credentials;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CredentialView {
    pub id: i64,
    pub person_id: i64,
    /// `card` (by UID) or `wiegand` (facility code + card number).
    pub kind: String,
    /// Upper-case hex of the card's UID.
    pub card_uid: Option<String>,
    pub facility: Option<i32>,
    pub card_number: Option<i64>,
    /// Whether a PIN is set. The PIN itself is never shown.
    pub has_pin: bool,
    /// `active`, `lost`, `stolen` or `revoked`.
    pub status: String,
    pub valid_until: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub person_id: i64,
    #[serde(default = "default_kind")]
    pub kind: String,
    #[serde(default)]
    pub card_uid: Option<String>,
    #[serde(default)]
    pub facility: Option<i32>,
    #[serde(default)]
    pub card_number: Option<i64>,
    /// 4 to 12 digits. Leave out to keep the current PIN; an empty string removes it.
    #[serde(default)]
    pub pin: Option<String>,
    /// A PIN's argon2id hash to store as it is (the site file's `pin_hash`, as export
    /// writes it); never read from or written to JSON.
    #[serde(skip)]
    pub pin_hash: Option<String>,
    #[serde(default = "default_status")]
    pub status: String,
    #[serde(default)]
    pub valid_until: Option<DateTime<Utc>>,
}

fn default_kind() -> String {
    "card".to_owned()
}
fn default_status() -> String {
    CredentialStatus::Active.as_str().to_owned()
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CredentialFilter {
    pub person_id: Option<i64>,
    /// `active`, `lost`, `stolen` or `revoked`.
    pub status: Option<String>,
    /// Exact card UID (any case).
    pub card_uid: Option<String>,
}

impl From<CredentialRow> for CredentialView {
    fn from(r: CredentialRow) -> Self {
        CredentialView {
            id: r.id,
            person_id: r.person_id,
            kind: r.kind,
            card_uid: r.card_uid,
            facility: r.facility,
            card_number: r.card_number,
            has_pin: r.pin_hash.is_some(),
            status: r.status,
            valid_until: r.valid_until.map(utc),
            last_used_at: r.last_used_at.map(utc),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

/// A PIN is 4 to 12 ASCII digits (docs/protocol.md).
pub fn valid_pin(pin: &str) -> bool {
    (4..=12).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The validated key of a credential input, or the field errors that prevent one.
pub fn key_of(input: &CredentialInput, errors: &mut FieldErrors) -> Option<CredentialKey> {
    match input.kind.as_str() {
        "card" => match input.card_uid.as_deref() {
            None => {
                errors.add("card_uid", "a card credential needs its UID");
                None
            }
            Some(uid) => match CredentialKey::card(uid) {
                Ok(key) => Some(key),
                Err(e) => {
                    errors.add("card_uid", e.to_string());
                    None
                }
            },
        },
        "wiegand" => {
            let facility = match input.facility {
                Some(f) if (0..=65535).contains(&f) => u32::try_from(f).ok(),
                Some(_) => {
                    errors.add("facility", "must be between 0 and 65535");
                    None
                }
                None => {
                    errors.add("facility", "a Wiegand credential needs its facility code");
                    None
                }
            };
            let number = match input.card_number {
                Some(n) => match u32::try_from(n) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        errors.add("card_number", "must be between 0 and 4294967295");
                        None
                    }
                },
                None => {
                    errors.add("card_number", "a Wiegand credential needs its card number");
                    None
                }
            };
            Some(CredentialKey::Wiegand {
                facility: facility?,
                number: number?,
            })
        }
        other => {
            errors.add(
                "kind",
                format!("'{other}' is not a credential kind; use card or wiegand"),
            );
            None
        }
    }
}

impl Entity for Credentials {
    const NAME: &'static str = "credential";
    const COLLECTION: &'static str = "credentials";
    type View = CredentialView;
    type Input = CredentialInput;
    type Filter = CredentialFilter;

    fn list(
        conn: &mut DbConnection,
        filter: &CredentialFilter,
        page: Page,
    ) -> QueryResult<(Vec<CredentialView>, i64)> {
        let query = || {
            let mut q = credentials::table.into_boxed();
            if let Some(person) = filter.person_id {
                q = q.filter(credentials::person_id.eq(person));
            }
            if let Some(status) = &filter.status {
                q = q.filter(credentials::status.eq(status.clone()));
            }
            if let Some(uid) = &filter.card_uid {
                q = q.filter(credentials::card_uid.eq(uid.trim().to_ascii_uppercase()));
            }
            q
        };
        let total = query().count().get_result(conn)?;
        let rows = query()
            .order(credentials::id)
            .offset(page.offset)
            .limit(page.limit)
            .select(CredentialRow::as_select())
            .load(conn)?;
        Ok((rows.into_iter().map(CredentialView::from).collect(), total))
    }

    fn get(conn: &mut DbConnection, id: i64) -> QueryResult<Option<CredentialView>> {
        credentials::table
            .find(id)
            .select(CredentialRow::as_select())
            .first(conn)
            .optional()
            .map(|r| r.map(CredentialView::from))
    }

    fn write(
        conn: &mut DbConnection,
        id: Option<i64>,
        input: CredentialInput,
        ctx: &ChangeContext<'_>,
    ) -> Result<i64, ChangeError> {
        let mut errors = FieldErrors::default();
        let key = key_of(&input, &mut errors);
        let status = errors.canonical::<CredentialStatus>("status", &input.status);
        if let Some(pin) = input.pin.as_deref()
            && !pin.is_empty()
            && !valid_pin(pin)
        {
            errors.add("pin", "must be 4 to 12 digits");
        }
        if let Some(hash) = input.pin_hash.as_deref() {
            if input.pin.is_some() {
                errors.add("pin_hash", "give a PIN or its hash, not both");
            }
            if !crate::identity::secret::is_acceptable_hash(hash) {
                errors.add(
                    "pin_hash",
                    "must be an argon2id PHC string as written by `gatehouse export`, \
                     with a cost between OWASP's minimum and 256 MiB",
                );
            } else if crate::identity::secret::is_foreign_pin_hash(
                crate::identity::appliance_key::installed(),
                hash,
            ) {
                errors.add(
                    "pin_hash",
                    "was keyed with another appliance's key, so no PIN can match it here: \
                     copy that appliance's secret.key along with its site file, or set the PIN \
                     again",
                );
            }
        }
        let person_exists =
            diesel::select(exists(people::table.find(input.person_id))).get_result(conn)?;
        require_ref(
            &mut errors,
            "person_id",
            "person",
            input.person_id,
            person_exists,
        );
        let (card_uid, facility, number) = match &key {
            Some(CredentialKey::Card { uid }) => (Some(uid.clone()), None, None),
            Some(CredentialKey::Wiegand { facility, number }) => (
                None,
                i32::try_from(*facility).ok(),
                Some(i64::from(*number)),
            ),
            None => (None, None, None),
        };
        let taken = match &key {
            Some(key) => holder_of(conn, key)?,
            None => None,
        };
        if let Some(holder) = taken.filter(|holder| Some(holder.credential_id) != id) {
            let field = if card_uid.is_some() {
                "card_uid"
            } else {
                "card_number"
            };
            errors.add(field, holder.why_not_issued());
        }
        errors.into_result()?;
        let pin_hash = match input.pin.as_deref() {
            None => input.pin_hash.map(Some),
            Some("") => Some(None),
            Some(pin) => Some(Some(
                crate::identity::secret::hash_pin(crate::identity::appliance_key::installed(), pin)
                    .map_err(|e| {
                        ChangeError::invalid("pin", format!("could not be hashed: {e}"))
                    })?,
            )),
        };
        let now = ctx.stamp();
        let values = (
            credentials::person_id.eq(input.person_id),
            credentials::kind.eq(&input.kind),
            credentials::card_uid.eq(card_uid),
            credentials::facility.eq(facility),
            credentials::card_number.eq(number),
            credentials::status.eq(&status),
            credentials::valid_until.eq(input.valid_until.map(stored)),
            credentials::updated_at.eq(now),
        );
        let id = match id {
            None => diesel::insert_into(credentials::table)
                .values((values, credentials::created_at.eq(now)))
                .returning(credentials::id)
                .get_result(conn)?,
            Some(id) => {
                diesel::update(credentials::table.find(id))
                    .set(values)
                    .execute(conn)?;
                id
            }
        };
        if let Some(hash) = pin_hash {
            diesel::update(credentials::table.find(id))
                .set(credentials::pin_hash.eq(hash))
                .execute(conn)?;
        }
        Ok(id)
    }

    /// A card's PIN is in no view (only `has_pin`): a new PIN is told from the stored one by
    /// verifying it against the stored hash (re-hashing would give another salt), and a
    /// PIN that is already the card's is taken out of the input, so it keeps its hash (a
    /// hash from before PINs were keyed stays so until the PIN changes).
    fn unseen_changes(
        conn: &mut DbConnection,
        id: i64,
        input: &mut CredentialInput,
    ) -> Result<Vec<&'static str>, ChangeError> {
        if input.pin.is_none() && input.pin_hash.is_none() {
            return Ok(Vec::new());
        }
        let stored: Option<String> = credentials::table
            .find(id)
            .select(credentials::pin_hash)
            .first::<Option<String>>(conn)
            .optional()?
            .flatten();
        let same = match (input.pin.as_deref(), input.pin_hash.as_deref(), &stored) {
            (Some(""), None, None) => true,
            (Some(pin), None, Some(hash)) if !pin.is_empty() => {
                crate::identity::secret::verify_pin(
                    crate::identity::appliance_key::installed(),
                    hash,
                    pin,
                )
            }
            (None, Some(new_hash), Some(hash)) => new_hash == hash,
            _ => false,
        };
        if same {
            input.pin = None;
            input.pin_hash = None;
            return Ok(Vec::new());
        }
        Ok(vec![match (input.pin.as_deref(), &stored) {
            (Some(""), _) => "PIN removed",
            (_, None) => "PIN set",
            (_, Some(_)) => "PIN changed",
        }])
    }

    fn delete(conn: &mut DbConnection, id: i64) -> QueryResult<usize> {
        diesel::delete(credentials::table.find(id)).execute(conn)
    }

    fn person_of(view: &CredentialView) -> Option<i64> {
        Some(view.person_id)
    }

    fn label(view: &CredentialView) -> String {
        match (&view.card_uid, view.facility, view.card_number) {
            (Some(uid), _, _) => format!("card {uid}"),
            (None, Some(f), Some(n)) => format!("card {f}:{n}"),
            _ => format!("credential {}", view.id),
        }
    }
}

/// Who holds a card (by its key), for the message that refuses to issue it twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub credential_id: i64,
    pub person_id: i64,
    /// The holder's name as the console shows it.
    pub name: String,
    pub status: CredentialStatus,
}

impl Holder {
    /// Why the card cannot be issued as a new one, naming who holds it.
    pub fn why_not_issued(&self) -> String {
        match self.status {
            CredentialStatus::Active => format!(
                "this card is already issued to {} and active: revoke it on their page first \
                 (a returned card is revoked), then issue it",
                self.name
            ),
            CredentialStatus::Lost | CredentialStatus::Stolen => format!(
                "this card is {}'s and reported {}: if it has been recovered, revoke it on \
                 their page first, then issue it",
                self.name,
                self.status.as_str()
            ),
            CredentialStatus::Revoked => format!(
                "this card was {}'s and is revoked: issue it from the new holder's page in \
                 the console, or change its person_id and status with PUT \
                 /api/v1/credentials/{}",
                self.name, self.credential_id
            ),
        }
    }
}

/// The credential with `key`, and its holder, if one is stored.
pub fn holder_of(conn: &mut DbConnection, key: &CredentialKey) -> QueryResult<Option<Holder>> {
    let query = credentials::table.inner_join(people::table).into_boxed();
    let query = match key {
        CredentialKey::Card { uid } => query.filter(credentials::card_uid.eq(uid.clone())),
        CredentialKey::Wiegand { facility, number } => query
            .filter(credentials::facility.eq(i32::try_from(*facility).unwrap_or(-1)))
            .filter(credentials::card_number.eq(i64::from(*number))),
    };
    let row: Option<(i64, i64, String, String)> = query
        .select((
            credentials::id,
            credentials::person_id,
            people::name,
            credentials::status,
        ))
        .first(conn)
        .optional()?;
    Ok(row.map(|(credential_id, person_id, name, status)| Holder {
        credential_id,
        person_id,
        name,
        // A status the table holds is one the entity wrote; an unknown one is treated as
        // the strictest, so it is never reissued by mistake.
        status: status.parse().unwrap_or(CredentialStatus::Active),
    }))
}

/// What issuing a card did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issued {
    /// A card not seen before.
    New,
    /// A revoked card (a returned visitor card from the pool) given to a new holder: the
    /// same credential, moved and made active, audited as an update from its last holder
    /// (named here).
    Reissued { last_holder: String },
}

/// Issues a card to `input.person_id`: a new credential, or, when the card is stored
/// and revoked, that credential again, moved to its new holder, made active, with the
/// new PIN or none and no end date. An active, lost or stolen card is refused, with its
/// holder named. Returns the card as it now is.
pub fn issue(
    conn: &mut DbConnection,
    input: CredentialInput,
    ctx: &ChangeContext<'_>,
) -> Result<(CredentialView, Issued), ChangeError> {
    crate::store::write_transaction(conn, |conn| {
        let mut errors = FieldErrors::default();
        let revoked = match key_of(&input, &mut errors) {
            Some(key) => {
                holder_of(conn, &key)?.filter(|holder| holder.status == CredentialStatus::Revoked)
            }
            None => None,
        };
        let Some(holder) = revoked else {
            return Ok((super::create::<Credentials>(conn, input, ctx)?, Issued::New));
        };
        let input = CredentialInput {
            // The last holder's PIN is theirs, not the new holder's.
            pin: Some(input.pin.unwrap_or_default()),
            pin_hash: None,
            status: CredentialStatus::Active.as_str().to_owned(),
            ..input
        };
        let view = super::update::<Credentials>(conn, holder.credential_id, input, ctx)?;
        Ok((
            view,
            Issued::Reissued {
                last_holder: holder.name,
            },
        ))
    })
}

/// How many PINs are still hashed as before PINs were keyed with the appliance key (no
/// `keyid` in the hash): they verify as they are until they are next changed.
pub fn count_unkeyed_pins(conn: &mut DbConnection) -> QueryResult<i64> {
    credentials::table
        .filter(credentials::pin_hash.is_not_null())
        .filter(credentials::pin_hash.not_like("%,keyid=%"))
        .count()
        .get_result(conn)
}

/// Whether writing `input` over the stored row would change nothing, compared as `write`
/// and `unseen_changes` store it: the key normalised, the status's canonical spelling, and
/// the PIN kept (none given), removed where there is none, or given as the stored hash. A
/// PIN in clear is told from the stored hash only by argon2id, so it counts as a change
/// here and `upsert` verifies it; so does anything `write` would refuse.
pub fn unchanged(row: &CredentialRow, input: &CredentialInput) -> bool {
    let same_key = match key_of(input, &mut FieldErrors::default()) {
        Some(CredentialKey::Card { uid }) => {
            row.card_uid.as_deref() == Some(uid.as_str())
                && row.facility.is_none()
                && row.card_number.is_none()
        }
        Some(CredentialKey::Wiegand { facility, number }) => {
            row.card_uid.is_none()
                && row.facility == i32::try_from(facility).ok()
                && row.card_number == Some(i64::from(number))
        }
        None => false,
    };
    let same_pin = match (input.pin.as_deref(), input.pin_hash.as_deref()) {
        (None, None) => true,
        (Some(""), None) => row.pin_hash.is_none(),
        (None, Some(hash)) => row.pin_hash.as_deref() == Some(hash),
        _ => false,
    };
    same_key
        && same_pin
        && row.person_id == input.person_id
        && row.kind == input.kind
        && input
            .status
            .parse::<CredentialStatus>()
            .is_ok_and(|status| row.status == status.as_str())
        && row.valid_until == input.valid_until.map(stored)
}
