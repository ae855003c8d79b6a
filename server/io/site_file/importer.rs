//! The import's machinery shared by the site file and the people CSV: one write
//! transaction, every entry through `entities::upsert`, every error kept with its place.

use std::collections::{HashMap, HashSet};

use diesel::prelude::*;

use super::{ImportError, ImportSummary};
use crate::entities::{self, ChangeContext, ChangeError, Entity, Upserted};
use crate::store::DbConnection;

/// The import's state: errors so far and the ids of natural keys seen.
pub(in crate::io) struct Importer<'c, 'a> {
    pub(in crate::io) conn: &'c mut DbConnection,
    pub(in crate::io) ctx: &'c ChangeContext<'a>,
    pub(in crate::io) errors: Vec<ImportError>,
    pub(in crate::io) summary: ImportSummary,
    pub(in crate::io) done: usize,
    pub(in crate::io) total: usize,
    pub(in crate::io) progress: &'c dyn Fn(usize, usize),
}

impl Importer<'_, '_> {
    pub(in crate::io) fn fail(&mut self, place: &str, message: impl Into<String>) {
        self.errors.push(ImportError {
            place: place.to_owned(),
            message: message.into(),
        });
    }

    fn tick(&mut self) {
        self.done += 1;
        (self.progress)(self.done, self.total);
    }

    /// Counts an entry that equals what is stored: nothing is written or audited for it.
    pub(in crate::io) fn keep(&mut self, section: &'static str) {
        self.tick();
        self.summary.add(section, Upserted::Unchanged);
    }

    /// Upserts one entry through the same validation as the API, recording any failure.
    pub(in crate::io) fn put<E: Entity>(
        &mut self,
        section: &'static str,
        place: &str,
        existing: Option<i64>,
        input: E::Input,
    ) -> Option<i64> {
        self.tick();
        match entities::upsert::<E>(self.conn, existing, input, self.ctx) {
            Ok((id, outcome)) => {
                self.summary.add(section, outcome);
                Some(id)
            }
            Err(ChangeError::Invalid(fields)) => {
                for (field, messages) in fields.0 {
                    for m in messages {
                        self.fail(place, format!("{field}: {m}"));
                    }
                }
                None
            }
            Err(e) => {
                self.fail(place, e.to_string());
                None
            }
        }
    }

    /// Looks up a natural key, recording an error naming the missing thing.
    pub(in crate::io) fn need(
        &mut self,
        place: &str,
        what: &str,
        key: &str,
        found: QueryResult<Option<i64>>,
    ) -> Option<i64> {
        match found {
            Ok(Some(id)) => Some(id),
            Ok(None) => {
                self.fail(
                    place,
                    format!("{what} '{key}' is neither in this file nor in the database"),
                );
                None
            }
            Err(e) => {
                self.fail(place, e.to_string());
                None
            }
        }
    }
}

pub(in crate::io) fn run_import(
    conn: &mut DbConnection,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    total: usize,
    progress: &dyn Fn(usize, usize),
    body: impl FnOnce(&mut Importer<'_, '_>),
) -> Result<ImportSummary, Vec<ImportError>> {
    enum Abort {
        Invalid(Vec<ImportError>),
        DryRun(ImportSummary),
        Db(diesel::result::Error),
    }
    impl From<diesel::result::Error> for Abort {
        fn from(e: diesel::result::Error) -> Self {
            Abort::Db(e)
        }
    }
    let result = crate::store::write_transaction::<ImportSummary, Abort, _>(conn, |conn| {
        let mut imp = Importer {
            conn,
            ctx,
            errors: Vec::new(),
            summary: ImportSummary::default(),
            done: 0,
            total,
            progress,
        };
        body(&mut imp);
        if !imp.errors.is_empty() {
            return Err(Abort::Invalid(imp.errors));
        }
        if dry_run {
            return Err(Abort::DryRun(imp.summary));
        }
        let summary = imp.summary;
        crate::store::audit::append(
            conn,
            &crate::store::audit::AuditEntry {
                provenance: ctx.provenance,
                action: "import",
                entity: "site_file",
                entity_id: None,
                summary: format!(
                    "import: {} created, {} updated",
                    summary.created(),
                    summary.updated()
                ),
                before: None,
                after: None,
            },
            ctx.now,
        )?;
        Ok(summary)
    });
    match result {
        Ok(summary) => Ok(summary),
        Err(Abort::DryRun(summary)) => Ok(summary),
        Err(Abort::Invalid(errors)) => Err(errors),
        Err(Abort::Db(e)) => Err(vec![ImportError {
            place: "database".to_owned(),
            message: e.to_string(),
        }]),
    }
}

/// Records an error for every entry whose key an earlier entry of the same list already
/// holds, naming both places: imported one after the other, the second would silently
/// overwrite the first (a card moving to another person).
pub(in crate::io) fn refuse_repeats<T, K: Eq + std::hash::Hash>(
    imp: &mut Importer<'_, '_>,
    entries: &[T],
    what: &str,
    key: impl Fn(&T) -> Option<K>,
    place: impl Fn(usize, &T) -> String,
) {
    let mut first: HashMap<K, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let Some(k) = key(entry) else {
            continue;
        };
        match first.entry(k) {
            std::collections::hash_map::Entry::Occupied(earlier) => {
                let earlier = *earlier.get();
                let message = format!(
                    "{what} as {}; each may appear once in a file",
                    place(earlier, &entries[earlier])
                );
                imp.fail(&place(i, entry), message);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(i);
            }
        }
    }
}

/// Writes entries that may name a parent entry of the same list (a zone's parent, a
/// person's manager) so that every parent in the file is written before its children,
/// whatever the file's order; entries left waiting on each other form a cycle.
#[allow(clippy::too_many_arguments)]
pub(in crate::io) fn parents_first<T, K: Eq + std::hash::Hash>(
    imp: &mut Importer<'_, '_>,
    entries: &[T],
    key: impl Fn(&T) -> K,
    parent: impl Fn(&T) -> Option<K>,
    place: impl Fn(usize, &T) -> String,
    cycle: &str,
    mut write: impl FnMut(&mut Importer<'_, '_>, &str, &T),
) {
    let in_file: HashSet<K> = entries.iter().map(&key).collect();
    let mut written: HashSet<K> = HashSet::new();
    let mut pending: Vec<(usize, &T)> = entries.iter().enumerate().collect();
    while !pending.is_empty() {
        let before = pending.len();
        let mut waiting = Vec::new();
        for (i, entry) in pending {
            let own = key(entry);
            let waits = parent(entry)
                .is_some_and(|p| p != own && in_file.contains(&p) && !written.contains(&p));
            if waits {
                waiting.push((i, entry));
                continue;
            }
            write(imp, &place(i, entry), entry);
            written.insert(own);
        }
        if waiting.len() == before {
            for (i, entry) in waiting {
                imp.fail(&place(i, entry), cycle);
            }
            return;
        }
        pending = waiting;
    }
}
