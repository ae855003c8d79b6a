//! The site file: a whole site as one TOML document (docs/site-file.md), imported as an
//! all-or-nothing upsert by natural keys and exported back.
//!
//! `file.rs` is the format and its parsing, `apply.rs` writes each section through the
//! `entities` paths (`importer.rs` holds the transaction and the errors), comparing every
//! entry of the big sections with what `stored.rs` read once, so that an unchanged entry
//! costs no write; `export.rs` writes the file back.

mod apply;
mod export;
mod file;
pub(in crate::io) mod importer;
pub(in crate::io) mod stored;

use std::fmt;

use crate::entities::{ChangeContext, Upserted};
use crate::store::DbConnection;

pub(in crate::io) use apply::import_people;
pub use export::export;
pub use file::*;
use importer::run_import;

/// One entry of the file that cannot be imported, and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportError {
    pub place: String,
    pub message: String,
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.message)
    }
}

/// Counts of what an import did, per section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub sections: Vec<(&'static str, usize, usize, usize)>,
}

impl ImportSummary {
    fn add(&mut self, section: &'static str, outcome: Upserted) {
        let entry = match self.sections.iter_mut().find(|s| s.0 == section) {
            Some(e) => e,
            None => {
                self.sections.push((section, 0, 0, 0));
                let last = self.sections.len() - 1;
                &mut self.sections[last]
            }
        };
        match outcome {
            Upserted::Created => entry.1 += 1,
            Upserted::Updated => entry.2 += 1,
            Upserted::Unchanged => entry.3 += 1,
        }
    }

    pub fn created(&self) -> usize {
        self.sections.iter().map(|s| s.1).sum()
    }

    pub fn updated(&self) -> usize {
        self.sections.iter().map(|s| s.2).sum()
    }
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<14} {:>8} {:>8} {:>10}",
            "section", "created", "updated", "unchanged"
        )?;
        for (section, c, u, n) in &self.sections {
            writeln!(f, "{section:<14} {c:>8} {u:>8} {n:>10}")?;
        }
        Ok(())
    }
}

/// Imports a site file in one transaction: either every entry is applied, or (if any entry
/// is invalid) nothing is, and every problem is reported with its place in the file.
pub fn import(
    conn: &mut DbConnection,
    text: &str,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<ImportSummary, Vec<ImportError>> {
    let file = parse(text)?;
    let total = file.sites.len()
        + file.schedules.len()
        + file.holidays.len()
        + file.zones.len()
        + file.doors.len()
        + file.readers.len()
        + file.levels.len()
        + file.people.len()
        + file.credentials.len()
        + file.entitlements.len();
    run_import(conn, ctx, dry_run, total, progress, |imp| {
        apply::apply(imp, &file)
    })
}
