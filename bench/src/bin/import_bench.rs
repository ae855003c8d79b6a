//! Imports at an identity provider's scale: a site file of N people (cards, entitlements)
//! and a people CSV of N lines, each imported into a fresh appliance database (the
//! reference, measured in the same run), then again unchanged, then again with 1% of the
//! people changed (a title, a card's status, an entitlement's justification).
//!
//! Then single-person changes through the API of a running appliance holding those
//! people, at an identity provider's pace (one client, one change at a time, 100 a
//! second): the answers' latency, the snapshots compiled and laid over per second, and
//! whether each change was in force when its answer arrived; the reference is one compile
//! of the whole policy, measured in the same run.
//!
//! Then event history (`gatehouse import --events`): a CSV of `--events` swipes by those
//! people's cards at the building's doors over the last 300 days, imported into the same
//! database (first import, then again: nothing added), against the site file's first
//! import as the reference.
//!
//! cargo run --release -p gatehouse-bench --bin import-bench -- --people 100000

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use chrono::Utc;
use clap::Parser;
use gatehouse::entities::ChangeContext;
use gatehouse::identity::provenance::Provenance;
use gatehouse::io::site_file::ImportSummary;
use gatehouse::policy::Snapshot;
use gatehouse::store::DbConnection;
use gatehouse_bench::measure::{Stats, fmt_duration, load_average, machine, ratio};

#[derive(Parser)]
struct Args {
    /// People in the file (and lines in the CSV).
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Every this many people, one is changed in the third import (100: 1%).
    #[arg(long, default_value_t = 100)]
    change_every: usize,
    /// The building the people's entitlements refer to (imported before timing).
    #[arg(long, default_value = "packaging/examples/office.toml")]
    site: String,
    /// Skip the site file (time only the people CSV; no API part either).
    #[arg(long)]
    csv_only: bool,
    /// Single-person API changes a second (0 skips the API part).
    #[arg(long, default_value_t = 100)]
    api_rate: u32,
    /// How long the API part sends changes, in seconds.
    #[arg(long, default_value_t = 20)]
    api_seconds: u64,
    /// Swipes in the event history CSV (0 skips the event history part).
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
}

/// One timed import and what it did.
struct Pass {
    name: &'static str,
    took: Duration,
    summary: ImportSummary,
    audited: i64,
}

fn open(dir: &Path, name: &str) -> Result<gatehouse::store::DbPool> {
    let url = format!("sqlite://{}", dir.join(name).display());
    let pool = gatehouse::store::open(&url, 2)?;
    let mut conn = pool.get()?;
    gatehouse::store::migrate(&mut conn)?;
    drop(conn);
    Ok(pool)
}

fn audit_entries(conn: &mut DbConnection) -> Result<i64> {
    use diesel::prelude::*;
    use gatehouse::store::schema::audit_log;
    Ok(audit_log::table.count().get_result(conn)?)
}

fn errors_text(errors: &[gatehouse::io::site_file::ImportError]) -> String {
    errors
        .iter()
        .take(5)
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Who makes the benchmark's changes, as `gatehouse import` records an import.
static PROVENANCE: std::sync::LazyLock<Provenance> =
    std::sync::LazyLock::new(|| Provenance::import("import-bench", "generated people"));

fn ctx() -> ChangeContext<'static> {
    ChangeContext {
        provenance: &PROVENANCE,
        now: Utc::now(),
    }
}

fn time_site_file(conn: &mut DbConnection, name: &'static str, text: &str) -> Result<Pass> {
    let before = audit_entries(conn)?;
    let started = Instant::now();
    let summary = gatehouse::io::site_file::import(conn, text, &ctx(), false, &|_, _| {})
        .map_err(|e| anyhow!("{name}: {}", errors_text(&e)))?;
    let took = started.elapsed();
    Ok(Pass {
        name,
        took,
        summary,
        audited: audit_entries(conn)? - before,
    })
}

fn time_csv(conn: &mut DbConnection, name: &'static str, text: &str) -> Result<Pass> {
    let before = audit_entries(conn)?;
    let started = Instant::now();
    let summary =
        gatehouse::io::people_csv::import(conn, text.as_bytes(), &ctx(), false, &|_, _| {})
            .map_err(|e| anyhow!("{name}: {}", errors_text(&e)))?;
    let took = started.elapsed();
    Ok(Pass {
        name,
        took,
        summary,
        audited: audit_entries(conn)? - before,
    })
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Ken", "Radia",
];
const LAST: [&str; 8] = [
    "Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Thompson", "Perlman",
];
const DEPARTMENTS: [&str; 5] = ["Engineering", "Sales", "Facilities", "Finance", "Research"];

fn employee_id(i: usize) -> String {
    format!("B{i:06}")
}

/// The people sections of a site file: person `i` has one or two cards and one to three
/// of the building's levels; `changed(i)` people get another title, their first card
/// is reported lost and their first entitlement gets another justification.
fn people_file(people: usize, levels: &[String], changed: impl Fn(usize) -> bool) -> String {
    let mut text = String::from("version = 1\n");
    for i in 0..people {
        let title = if changed(i) { "Lead" } else { "Member" };
        let manager = if i % 10 == 0 || i < 10 {
            String::new()
        } else {
            format!("manager = \"{}\"\n", employee_id(i - i % 10))
        };
        let _ = write!(
            text,
            "\n[[people]]\nemployee_id = \"{}\"\nname = \"{} {} {i}\"\ndepartment = \"{}\"\ntitle = \"{title}\"\n{manager}",
            employee_id(i),
            FIRST[i % FIRST.len()],
            LAST[(i / 8) % LAST.len()],
            DEPARTMENTS[i % DEPARTMENTS.len()],
        );
    }
    for i in 0..people {
        for k in 0..(1 + i % 2) {
            let status = if k == 0 && changed(i) {
                "lost"
            } else {
                "active"
            };
            let _ = write!(
                text,
                "\n[[credentials]]\nemployee_id = \"{}\"\ncard_uid = \"A1{:010X}\"\nstatus = \"{status}\"\n",
                employee_id(i),
                i * 2 + k
            );
        }
    }
    for i in 0..people {
        for k in 0..(1 + i % 3) {
            let level = &levels[(i + k * 7) % levels.len()];
            let why = if k == 0 && changed(i) {
                "moved teams"
            } else {
                "their role"
            };
            let _ = write!(
                text,
                "\n[[entitlements]]\nemployee_id = \"{}\"\nlevel = \"{level}\"\njustification = \"{why}\"\n",
                employee_id(i)
            );
        }
    }
    text
}

/// The same people as an HR export.
fn people_csv(people: usize, changed: impl Fn(usize) -> bool) -> String {
    let mut text = String::from(
        "employee_id,name,department,title,manager_employee_id,person_type,status,valid_from,valid_until\n",
    );
    for i in 0..people {
        let title = if changed(i) { "Lead" } else { "Member" };
        let manager = if i % 10 == 0 || i < 10 {
            String::new()
        } else {
            employee_id(i - i % 10)
        };
        let _ = writeln!(
            text,
            "{},{} {} {i},{},{title},{manager},employee,active,2026-01-01,",
            employee_id(i),
            FIRST[i % FIRST.len()],
            LAST[(i / 8) % LAST.len()],
            DEPARTMENTS[i % DEPARTMENTS.len()],
        );
    }
    text
}

fn report(what: &str, passes: &[Pass]) {
    println!("\n{what}");
    println!(
        "{:<22} {:>10} {:>12} {:>9} {:>9} {:>10} {:>9}",
        "pass", "time", "vs first", "created", "updated", "unchanged", "audited"
    );
    let first = passes[0].took;
    for p in passes {
        let unchanged: usize = p.summary.sections.iter().map(|s| s.3).sum();
        println!(
            "{:<22} {:>10} {:>11.3}x {:>9} {:>9} {:>10} {:>9}",
            p.name,
            fmt_duration(p.took),
            ratio(p.took, first),
            p.summary.created(),
            p.summary.updated(),
            unchanged,
            p.audited
        );
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let every = args.change_every.max(1);
    let changed = |i: usize| i % every == every / 2;
    let site = std::fs::read_to_string(&args.site)
        .with_context(|| format!("cannot read {}", args.site))?;
    let levels: Vec<String> = gatehouse::io::site_file::parse(&site)
        .map_err(|e| anyhow!("{}: {}", args.site, errors_text(&e)))?
        .levels
        .into_iter()
        .map(|l| l.name)
        .collect();
    if levels.is_empty() {
        return Err(anyhow!("{} has no access levels", args.site));
    }
    println!(
        "import-bench: {} people, 1 in {every} changed; {}; load {}",
        args.people,
        machine(),
        load_average().unwrap_or_default()
    );
    let dir = tempfile::tempdir()?;
    // The appliance's key, as `serve` installs it: PINs are keyed and the audit log's
    // entries MACed with it, so the imports pay what they pay on an appliance.
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    std::fs::set_permissions(
        &data_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )?;
    gatehouse::identity::appliance_key::install_from(&data_dir, true)?;
    if !args.csv_only {
        let pool = open(dir.path(), "site.db")?;
        let mut conn = pool.get()?;
        gatehouse::io::site_file::import(&mut conn, &site, &ctx(), false, &|_, _| {})
            .map_err(|e| anyhow!("{}: {}", args.site, errors_text(&e)))?;
        let file = people_file(args.people, &levels, |_| false);
        let edited = people_file(args.people, &levels, changed);
        let passes = [
            time_site_file(&mut conn, "first import", &file)?,
            time_site_file(&mut conn, "unchanged re-import", &file)?,
            time_site_file(&mut conn, "re-import, 1 in N", &edited)?,
        ];
        report(
            &format!(
                "site file ({} KiB: people, cards, entitlements)",
                file.len() / 1024
            ),
            &passes,
        );
        if args.events > 0 {
            let doors: Vec<String> = gatehouse::io::site_file::parse(&site)
                .map_err(|e| anyhow!("{}: {}", args.site, errors_text(&e)))?
                .doors
                .into_iter()
                .map(|d| d.name)
                .collect();
            event_history(&mut conn, dir.path(), &args, &doors, passes[0].took)?;
        }
        drop(conn);
        drop(pool);
        if args.api_rate > 0 {
            api_changes(dir.path(), &args, &levels)?;
        }
    }
    let pool = open(dir.path(), "csv.db")?;
    let mut conn = pool.get()?;
    let csv = people_csv(args.people, |_| false);
    let edited = people_csv(args.people, changed);
    let passes = [
        time_csv(&mut conn, "first import", &csv)?,
        time_csv(&mut conn, "unchanged re-import", &csv)?,
        time_csv(&mut conn, "re-import, 1 in N", &edited)?,
    ];
    report(&format!("people CSV ({} KiB)", csv.len() / 1024), &passes);
    Ok(())
}

/// Writes the event history CSV: swipe `n` is person `n * 7919 % people`'s first card at
/// one of the doors, one in 50 refused, spread over the last 300 days (oldest first).
fn write_events_csv(path: &Path, rows: usize, people: usize, doors: &[String]) -> Result<u64> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "at,card_uid,door,result,direction")?;
    let start = Utc::now() - chrono::TimeDelta::days(300);
    let step = 300.0 * 86_400.0 / rows.max(1) as f64;
    for n in 0..rows {
        let at = start + chrono::TimeDelta::milliseconds((n as f64 * step * 1000.0) as i64);
        let person = (n * 7919) % people.max(1);
        let result = if n % 50 == 0 { "denied" } else { "granted" };
        let direction = if n % 2 == 0 { "in" } else { "out" };
        writeln!(
            out,
            "{},A1{:010X},{},{result},{direction}",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            person * 2,
            doors[n % doors.len()],
        )?;
    }
    out.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// Imports the event history twice (the second adds nothing) and reports both against the
/// site file's first import.
fn event_history(
    conn: &mut DbConnection,
    dir: &Path,
    args: &Args,
    doors: &[String],
    reference: Duration,
) -> Result<()> {
    use gatehouse::io::events_csv::{EventImportOptions, import};
    if doors.is_empty() {
        return Err(anyhow!("{} has no doors", args.site));
    }
    let path = dir.join("history.csv");
    let bytes = write_events_csv(&path, args.events, args.people, doors)?;
    let options = EventImportOptions {
        dry_run: false,
        retention_days: 365,
    };
    let mut passes = Vec::new();
    for name in ["first import", "re-import (adds nothing)"] {
        let mut file = std::fs::File::open(&path)?;
        let started = Instant::now();
        let summary = import(conn, &mut file, &ctx(), options, &|_| {})
            .map_err(|e| anyhow!("{name}: {}", errors_text(&e)))?;
        passes.push((name, started.elapsed(), summary));
    }
    println!(
        "\nevent history ({} swipes, {} MiB CSV), into the site file's database",
        args.events,
        bytes / (1024 * 1024)
    );
    println!(
        "{:<26} {:>10} {:>14} {:>16} {:>9} {:>9}",
        "pass", "time", "rows/s", "vs site file 1st", "added", "present"
    );
    for (name, took, summary) in &passes {
        println!(
            "{:<26} {:>10} {:>14.0} {:>15.3}x {:>9} {:>9}",
            name,
            fmt_duration(*took),
            summary.rows as f64 / took.as_secs_f64(),
            ratio(*took, reference),
            summary.added,
            summary.already_present
        );
    }
    Ok(())
}

/// One change the client sends: a path and the whole input it replaces the entity with,
/// and how to see it in the live snapshot.
struct Change {
    path: String,
    body: String,
    in_force: Box<dyn Fn(&Snapshot) -> bool + Send>,
}

/// The changes of person `i` of the generated file, alternating between two states:
/// their status, their first card's status, their first entitlement's expiry.
fn changes_of(
    conn: &mut DbConnection,
    i: usize,
    round: usize,
    levels: &[String],
) -> Result<Vec<Change>> {
    use diesel::prelude::*;
    use gatehouse::store::schema::{access_levels, credentials, entitlements, people};
    let employee_id = employee_id(i);
    let person: i64 = people::table
        .filter(people::employee_id.eq(&employee_id))
        .select(people::id)
        .first(conn)?;
    let uid = format!("A1{:010X}", i * 2);
    let card: i64 = credentials::table
        .filter(credentials::card_uid.eq(&uid))
        .select(credentials::id)
        .first(conn)?;
    let level_name = &levels[i % levels.len()];
    let level: i64 = access_levels::table
        .filter(access_levels::name.eq(level_name))
        .select(access_levels::id)
        .first(conn)?;
    let entitlement: i64 = entitlements::table
        .filter(entitlements::person_id.eq(person))
        .filter(entitlements::level_id.eq(level))
        .select(entitlements::id)
        .first(conn)?;
    let on = round.is_multiple_of(2);
    let status = if on { "suspended" } else { "active" };
    let card_status = if on { "lost" } else { "active" };
    let until = if on {
        "\"2030-01-01T00:00:00Z\"".to_owned()
    } else {
        "null".to_owned()
    };
    let name = format!(
        "{} {} {i}",
        FIRST[i % FIRST.len()],
        LAST[(i / 8) % LAST.len()]
    );
    let department = DEPARTMENTS[i % DEPARTMENTS.len()];
    let expect_until = on;
    Ok(vec![
        Change {
            path: format!("/api/v1/people/{person}"),
            body: format!(
                r#"{{"employee_id":"{employee_id}","name":"{name}","department":"{department}","title":"Member","status":"{status}"}}"#
            ),
            in_force: Box::new(move |snap: &Snapshot| {
                snap.person(person)
                    .is_some_and(|p| p.status.as_str() == status)
            }),
        },
        Change {
            path: format!("/api/v1/credentials/{card}"),
            body: format!(
                r#"{{"person_id":{person},"card_uid":"{uid}","status":"{card_status}"}}"#
            ),
            in_force: Box::new(move |snap: &Snapshot| {
                snap.credential_by_id(card)
                    .is_some_and(|c| c.status.as_str() == card_status)
            }),
        },
        Change {
            path: format!("/api/v1/entitlements/{entitlement}"),
            body: format!(
                r#"{{"person_id":{person},"level_id":{level},"valid_until":{until},"justification":"their role"}}"#
            ),
            in_force: Box::new(move |snap: &Snapshot| {
                snap.entitlements_of(person)
                    .iter()
                    .any(|e| e.id == entitlement && e.valid_until.is_some() == expect_until)
            }),
        },
    ])
}

/// The appliance on the imported database, changed through its API at `api_rate` a second.
fn api_changes(dir: &Path, args: &Args, levels: &[String]) -> Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_path = dir.join("gatehouse.toml");
    std::fs::write(
        &config_path,
        format!(
            "data_dir = \"{data}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\n\
             url = \"sqlite://{db}\"\n\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:0\"\n\n\
             [modbus]\nenabled = false\n\n[events]\nretention_days = 0\n",
            data = dir.join("data").display(),
            db = dir.join("site.db").display(),
        ),
    )?;
    let config = gatehouse::config::Config::load(Some(&config_path), std::iter::empty())?;
    let runtime = gatehouse_bench::appliance::runtime("appliance", 2)?;
    let running = runtime.block_on(gatehouse::app::serve::start(
        config,
        gatehouse::clock::Clock::System,
    ))?;
    let state = running.state.clone();
    runtime.spawn(running.server);
    let base = format!("http://{}", running.addr);
    let token = {
        let mut conn = state.db.get()?;
        let ctx = ctx();
        gatehouse::identity::admins::create_admin(
            &mut conn,
            &gatehouse::identity::admins::AdminInput {
                username: "idp".to_owned(),
                password: "a long enough password".to_owned(),
                role: "admin".to_owned(),
            },
            &ctx,
        )
        .map_err(|e| anyhow!("cannot create the API's admin: {e:?}"))?;
        gatehouse::identity::admins::issue_token(
            &mut conn,
            "idp",
            "identity provider",
            gatehouse::identity::admins::TokenScope::Full,
            None,
            &ctx,
        )
        .map_err(|e| anyhow!("cannot issue a token: {e:?}"))?
        .token
    };
    // The reference: compiling the whole policy, as every change cost before.
    let compile = {
        let mut conn = state.db.get()?;
        let mut times = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            let loaded = gatehouse::store::load::load_policy(&mut conn)?;
            let snapshot = Snapshot::compile(&loaded.data, Utc::now())?;
            std::hint::black_box(snapshot);
            times.push(started.elapsed());
        }
        Stats::of(times)
    };
    let total = args.api_rate as usize * args.api_seconds as usize;
    let mut plan = Vec::with_capacity(total);
    {
        let mut conn = state.db.get()?;
        let mut round = 0;
        while plan.len() < total {
            for i in (0..args.people).step_by(10).take(total / 3 + 1) {
                plan.extend(changes_of(&mut conn, i, round, levels)?);
                if plan.len() >= total {
                    break;
                }
            }
            round += 1;
        }
        plan.truncate(total);
    }
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let bearer = format!("Bearer {token}");
    let interval = Duration::from_secs(1) / args.api_rate.max(1);
    let before = state.live.rebuild_counts();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(total);
    let mut late = Vec::new();
    for (n, change) in plan.iter().enumerate() {
        let due = started + interval * u32::try_from(n).unwrap_or(u32::MAX);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let response = agent
            .put(&format!("{base}{}", change.path))
            .header("Authorization", &bearer)
            .header("Content-Type", "application/json")
            .send(change.body.as_bytes())?;
        let answered = Instant::now();
        latencies.push(answered - sent);
        if response.status().as_u16() != 200 {
            return Err(anyhow!("{} answered {}", change.path, response.status()));
        }
        // In force when the answer arrived, or how long after it.
        while !(change.in_force)(&state.live.snapshot()) {
            if answered.elapsed() > Duration::from_secs(5) {
                return Err(anyhow!("{} not in force 5 s after its answer", change.path));
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let waited = answered.elapsed();
        if waited > Duration::from_millis(1) {
            late.push(waited);
        }
    }
    let took = started.elapsed();
    let after = state.live.rebuild_counts();
    let latency = Stats::of(latencies);
    let per_second = |n: u64| n as f64 / took.as_secs_f64();
    println!(
        "\nAPI: {total} single-person changes (status, card, entitlement) by one client, \
         one at a time, paced at {}/s, over {:.1} s",
        args.api_rate,
        took.as_secs_f64()
    );
    println!(
        "reference, one compile of the whole policy (load + compile, 5 runs): p50 {}, max {}",
        fmt_duration(compile.p50),
        fmt_duration(compile.max)
    );
    println!(
        "answers: p50 {} ({:.3}x a compile), p99 {} ({:.3}x), max {}",
        fmt_duration(latency.p50),
        ratio(latency.p50, compile.p50),
        fmt_duration(latency.p99),
        ratio(latency.p99, compile.p50),
        fmt_duration(latency.max)
    );
    println!(
        "snapshots: {:.2} compiles/s, {:.1} changes laid over/s ({} and {} in all)",
        per_second(after.compiled - before.compiled),
        per_second(after.laid_over - before.laid_over),
        after.compiled - before.compiled,
        after.laid_over - before.laid_over
    );
    println!(
        "in force when the answer arrived: {} of {total} (the others within {})",
        total - late.len(),
        fmt_duration(late.iter().max().copied().unwrap_or_default())
    );
    Ok(())
}
