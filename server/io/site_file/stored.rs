//! What the database holds of the big sections (people, cards, entitlements, and the level
//! names they refer to), read once per import so that each entry is compared in memory.
//!
//! Looking each entry up and rewriting it in a savepoint that is rolled back when nothing
//! changed made an unchanged re-import quadratic (14 minutes at 30,000 people); with this,
//! an entry equal to its row costs a hash lookup and no write.

use std::collections::HashMap;

use diesel::prelude::*;

use crate::policy::CredentialKey;
use crate::store::DbConnection;
use crate::store::rows::{CredentialRow, EntitlementRow, PersonRow};
use crate::store::schema::{access_levels, credentials, entitlements, people};

/// The stored rows by natural key. A row is dropped once its entry is written (what is
/// stored then is no longer what was read); the key keeps pointing at its id.
pub(in crate::io) struct Stored {
    person_ids: HashMap<String, i64>,
    people: HashMap<i64, PersonRow>,
    credential_ids: HashMap<CredentialKey, i64>,
    credentials: HashMap<i64, CredentialRow>,
    entitlement_ids: HashMap<(i64, i64), i64>,
    entitlements: HashMap<i64, EntitlementRow>,
    level_ids: HashMap<String, i64>,
}

impl Stored {
    /// Reads the four tables, each once, in the import's transaction.
    pub(in crate::io) fn load(conn: &mut DbConnection) -> QueryResult<Stored> {
        let people_rows: Vec<PersonRow> =
            people::table.select(PersonRow::as_select()).load(conn)?;
        let credential_rows: Vec<CredentialRow> = credentials::table
            .select(CredentialRow::as_select())
            .load(conn)?;
        let entitlement_rows: Vec<EntitlementRow> = entitlements::table
            .select(EntitlementRow::as_select())
            .load(conn)?;
        let level_ids = access_levels::table
            .select((access_levels::name, access_levels::id))
            .load::<(String, i64)>(conn)?
            .into_iter()
            .collect();
        Ok(Stored {
            person_ids: people_rows
                .iter()
                .map(|p| (p.employee_id.clone(), p.id))
                .collect(),
            people: people_rows.into_iter().map(|p| (p.id, p)).collect(),
            credential_ids: credential_rows
                .iter()
                .filter_map(|c| stored_key(c).map(|key| (key, c.id)))
                .collect(),
            credentials: credential_rows.into_iter().map(|c| (c.id, c)).collect(),
            entitlement_ids: entitlement_rows
                .iter()
                .map(|e| ((e.person_id, e.level_id), e.id))
                .collect(),
            entitlements: entitlement_rows.into_iter().map(|e| (e.id, e)).collect(),
            level_ids,
        })
    }

    /// The person with this employee id, compared as the database compares it (exactly).
    pub(in crate::io) fn person_id(&self, employee_id: &str) -> Option<i64> {
        self.person_ids.get(employee_id).copied()
    }

    pub(in crate::io) fn person(&self, id: i64) -> Option<&PersonRow> {
        self.people.get(&id)
    }

    /// Records that a person entry was written: created (a new id) or rewritten.
    pub(in crate::io) fn person_written(&mut self, employee_id: &str, id: i64) {
        self.people.remove(&id);
        self.person_ids.insert(employee_id.to_owned(), id);
    }

    pub(in crate::io) fn credential_id(&self, key: &CredentialKey) -> Option<i64> {
        self.credential_ids.get(key).copied()
    }

    pub(in crate::io) fn credential(&self, id: i64) -> Option<&CredentialRow> {
        self.credentials.get(&id)
    }

    pub(in crate::io) fn credential_written(&mut self, key: CredentialKey, id: i64) {
        self.credentials.remove(&id);
        self.credential_ids.insert(key, id);
    }

    pub(in crate::io) fn entitlement_id(&self, person_id: i64, level_id: i64) -> Option<i64> {
        self.entitlement_ids.get(&(person_id, level_id)).copied()
    }

    pub(in crate::io) fn entitlement(&self, id: i64) -> Option<&EntitlementRow> {
        self.entitlements.get(&id)
    }

    pub(in crate::io) fn entitlement_written(&mut self, person_id: i64, level_id: i64, id: i64) {
        self.entitlements.remove(&id);
        self.entitlement_ids.insert((person_id, level_id), id);
    }

    /// The access level with this name, compared exactly (as the database does).
    pub(in crate::io) fn level_id(&self, name: &str) -> Option<i64> {
        self.level_ids.get(name).copied()
    }
}

/// The key a stored credential is found by: its UID as stored (the card lookup compares
/// the normalised UID with the column), or its Wiegand pair when both are in range (a
/// lookup by a valid pair never matches one out of range).
fn stored_key(c: &CredentialRow) -> Option<CredentialKey> {
    match (&c.card_uid, c.facility, c.card_number) {
        (Some(uid), _, _) => Some(CredentialKey::Card { uid: uid.clone() }),
        (None, Some(facility), Some(number)) => Some(CredentialKey::Wiegand {
            facility: u32::try_from(facility).ok()?,
            number: u32::try_from(number).ok()?,
        }),
        _ => None,
    }
}
