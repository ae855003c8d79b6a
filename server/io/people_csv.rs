//! The people CSV of HR (the nightly sync): one person a line, imported all or nothing
//! like a site file's `people` section, with every problem named by its line.

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::site_file::importer::{refuse_repeats, run_import};
use super::site_file::stored::Stored;
use super::site_file::{ImportError, ImportSummary, PersonEntry, import_people};
use crate::entities::ChangeContext;
use crate::store::DbConnection;

/// One row of an HR export. Column names are the header line; order does not matter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonCsvRow {
    employee_id: String,
    name: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    manager_employee_id: String,
    #[serde(default)]
    person_type: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    valid_from: String,
    #[serde(default)]
    valid_until: String,
}

fn csv_time(value: &str) -> Result<Option<DateTime<Utc>>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(value, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| format!("'{value}' is neither a date (2026-12-31) nor an RFC 3339 time"))
}

/// Imports people from a CSV with a header line, all or nothing, like a site file. Every
/// problem is reported at once, each with its line (the header is line 1).
pub fn import(
    conn: &mut DbConnection,
    reader: impl std::io::Read,
    ctx: &ChangeContext<'_>,
    dry_run: bool,
    progress: &dyn Fn(usize, usize),
) -> Result<ImportSummary, Vec<ImportError>> {
    let mut entries = Vec::new();
    let mut lines = Vec::new();
    let mut errors = Vec::new();
    let mut csv = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(reader);
    let line_error = |line: u64, message: String| ImportError {
        place: format!("line {line}"),
        message,
    };
    let headers = match csv.byte_headers() {
        Ok(h) => csv::StringRecord::from_byte_record(h.clone()).map_err(|e| {
            vec![line_error(
                1,
                format!("the header line is not UTF-8 text: {e}"),
            )]
        })?,
        Err(e) => return Err(vec![line_error(1, e.to_string())]),
    };
    let mut record = csv::ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                errors.push(line_error(line, e.to_string()));
                if io {
                    break;
                }
                continue;
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        let text = match csv::StringRecord::from_byte_record(record.clone()) {
            Ok(text) => text,
            Err(e) => {
                let column = headers.get(e.utf8_error().field()).unwrap_or("a field");
                errors.push(line_error(
                    line,
                    format!("{column}: {}", crate::input::NOT_UTF8),
                ));
                continue;
            }
        };
        if let Some(i) = text.iter().position(|field| field.contains('\0')) {
            let column = headers.get(i).unwrap_or("a field");
            errors.push(line_error(line, format!("{column}: {}", crate::input::NUL)));
            continue;
        }
        let row: PersonCsvRow = match text.deserialize(Some(&headers)) {
            Ok(row) => row,
            Err(e) => {
                errors.push(line_error(line, e.to_string()));
                continue;
            }
        };
        let (valid_from, valid_until) =
            match (csv_time(&row.valid_from), csv_time(&row.valid_until)) {
                (Ok(f), Ok(u)) => (f, u),
                (Err(m), _) | (_, Err(m)) => {
                    errors.push(line_error(line, m));
                    continue;
                }
            };
        let or = |v: String, d: &str| if v.is_empty() { d.to_owned() } else { v };
        entries.push(PersonEntry {
            employee_id: row.employee_id,
            name: row.name,
            department: row.department,
            title: row.title,
            manager: (!row.manager_employee_id.is_empty()).then_some(row.manager_employee_id),
            person_type: or(row.person_type, "employee"),
            status: or(row.status, "active"),
            valid_from,
            valid_until,
            notes: String::new(),
        });
        lines.push(line);
    }
    let place = |i: usize, p: &PersonEntry| {
        format!(
            "line {} ({})",
            lines.get(i).copied().unwrap_or(0),
            p.employee_id
        )
    };
    // The lines that could not be read are reported with everything the import finds in the
    // others, and make it change nothing.
    let total = entries.len();
    let result = run_import(conn, ctx, dry_run, total, progress, |imp| {
        imp.errors.append(&mut errors);
        refuse_repeats(
            imp,
            &entries,
            "the same employee id",
            |p| Some(p.employee_id.trim().to_owned()),
            place,
        );
        match Stored::load(imp.conn) {
            Ok(mut stored) => import_people(imp, &mut stored, &entries, &place),
            Err(e) => imp.fail("database", e.to_string()),
        }
    });
    result.map_err(|mut errors| {
        let line_of = |e: &ImportError| {
            e.place
                .strip_prefix("line ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(u64::MAX)
        };
        errors.sort_by_key(line_of);
        errors
    })
}
