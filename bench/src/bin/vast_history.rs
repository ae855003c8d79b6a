//! The VAST Challenge 2016 MC2 proximity-card log (`../shared/data/vast2016-mc2/`) as a
//! Gatehouse site file and an event history CSV, so that a real building's two weeks can
//! be imported (`gatehouse import site.toml`, `gatehouse import --events events.csv`) and
//! looked at by the risk engine.
//!
//! The building: a site `GAStech` (timezone UTC, so the data's wall-clock hours read as
//! they are), zones `Floor 1` to `Floor 3` inside `Building`, and `Server Room` inside
//! `Building` (not inside Floor 3, so that a level of the floors does not cover it). Each
//! proximity zone of a floor becomes a zone of its floor with one door of the same name
//! (`F2 Zone 4`), the server room one door `Server Room Door` (critical). Each prox id
//! becomes a person (the employee id is the prox id; the data has no names, departments or
//! titles) with one card, and each read a granted swipe at its zone's door with that card.
//! The data has no grants: everyone gets `Office floors` (the three floors), and those
//! read at the server room get `Server Room`, both granted at the first day of the data.
//!
//! The log is from 2016; by default every time is moved by whole weeks (weekdays stay) so
//! that its last day is within the last week, inside the default event retention.
//!
//! cargo run -p gatehouse-bench --bin vast-history -- \
//!     --data ../shared/data/vast2016-mc2 --out vast-site

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow};
use chrono::{NaiveDateTime, TimeDelta, Utc};
use clap::Parser;

#[derive(Parser)]
struct Args {
    /// The folder holding proxOut-MC2.csv.
    #[arg(long)]
    data: PathBuf,
    /// Where site.toml and events.csv are written (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// Keep the 2016 dates (importing them needs events.retention_days = 0 or large enough).
    #[arg(long)]
    keep_dates: bool,
}

/// A read's place: a floor's zone, or the server room.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Zone { floor: u32, zone: u32 },
    ServerRoom,
}

impl Place {
    fn door(&self) -> String {
        match self {
            Place::Zone { floor, zone } => format!("F{floor} Zone {zone}"),
            Place::ServerRoom => "Server Room Door".to_owned(),
        }
    }
}

struct Read {
    at: NaiveDateTime,
    prox: String,
    place: Place,
}

fn parse(text: &str) -> Result<Vec<Read>> {
    let mut reads = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [at, _kind, prox, floor, zone] = fields[..] else {
            return Err(anyhow!("line {}: expected 5 fields: {line}", i + 1));
        };
        let at = NaiveDateTime::parse_from_str(at, "%Y-%m-%d %H:%M")
            .with_context(|| format!("line {}: time '{at}'", i + 1))?;
        let place = if zone.eq_ignore_ascii_case("server room") {
            Place::ServerRoom
        } else {
            Place::Zone {
                floor: floor
                    .parse()
                    .with_context(|| format!("line {}: floor '{floor}'", i + 1))?,
                zone: zone
                    .parse()
                    .with_context(|| format!("line {}: zone '{zone}'", i + 1))?,
            }
        };
        reads.push(Read {
            at,
            prox: prox.to_owned(),
            place,
        });
    }
    Ok(reads)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let source = args.data.join("proxOut-MC2.csv");
    let text = std::fs::read_to_string(&source)
        .with_context(|| format!("cannot read {}", source.display()))?;
    let mut reads = parse(&text)?;
    reads.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.prox.cmp(&b.prox)));
    let (Some(first), Some(last)) = (reads.first().map(|r| r.at), reads.last().map(|r| r.at))
    else {
        return Err(anyhow!("{} holds no reads", source.display()));
    };
    // Whole weeks, so that Mondays stay Mondays: the last day lands within the last week.
    let shift = if args.keep_dates {
        TimeDelta::zero()
    } else {
        let yesterday = Utc::now().naive_utc() - TimeDelta::days(1);
        TimeDelta::weeks((yesterday - last).num_weeks())
    };
    let granted_at = (first + shift)
        .date()
        .and_hms_opt(0, 0, 0)
        .unwrap_or(first + shift);

    let people: BTreeSet<&str> = reads.iter().map(|r| r.prox.as_str()).collect();
    let card_of: BTreeMap<&str, String> = people
        .iter()
        .enumerate()
        .map(|(i, p)| (*p, format!("5616{i:04X}")))
        .collect();
    let places: BTreeSet<Place> = reads.iter().map(|r| r.place.clone()).collect();
    let server_room: BTreeSet<&str> = reads
        .iter()
        .filter(|r| r.place == Place::ServerRoom)
        .map(|r| r.prox.as_str())
        .collect();
    let floors: BTreeSet<u32> = places
        .iter()
        .filter_map(|p| match p {
            Place::Zone { floor, .. } => Some(*floor),
            Place::ServerRoom => None,
        })
        .collect();

    let mut site = String::from(
        "# The VAST Challenge 2016 MC2 building, converted by bench/src/bin/vast_history.rs.\n\
         version = 1\n\n[[sites]]\nname = \"GAStech\"\ntimezone = \"UTC\"\n\n\
         [[schedules]]\nname = \"Always\"\nholidays = \"ignore\"\n\
         windows = [{ cron = \"0 0 * * *\", duration_min = 1440 }]\n\n\
         [[zones]]\nsite = \"GAStech\"\nname = \"Building\"\n",
    );
    for floor in &floors {
        let _ = write!(
            site,
            "\n[[zones]]\nsite = \"GAStech\"\nname = \"Floor {floor}\"\nparent = \"Building\"\n"
        );
    }
    let _ = write!(
        site,
        "\n[[zones]]\nsite = \"GAStech\"\nname = \"Server Room\"\nparent = \"Building\"\n"
    );
    for place in &places {
        match place {
            Place::Zone { floor, zone } => {
                let _ = write!(
                    site,
                    "\n[[zones]]\nsite = \"GAStech\"\nname = \"F{floor} Zone {zone}\"\nparent = \"Floor {floor}\"\n\
                     \n[[doors]]\nname = \"{door}\"\nsite = \"GAStech\"\nzone = \"F{floor} Zone {zone}\"\n",
                    door = place.door()
                );
            }
            Place::ServerRoom => {
                let _ = write!(
                    site,
                    "\n[[doors]]\nname = \"Server Room Door\"\nsite = \"GAStech\"\nzone = \"Server Room\"\nsensitivity = \"critical\"\n"
                );
            }
        }
    }
    let floor_items: Vec<String> = floors
        .iter()
        .map(|f| format!("{{ site = \"GAStech\", zone = \"Floor {f}\", schedule = \"Always\" }}"))
        .collect();
    let _ = write!(
        site,
        "\n[[levels]]\nname = \"Office floors\"\nitems = [{}]\n\
         \n[[levels]]\nname = \"Server Room\"\nitems = [{{ door = \"Server Room Door\", schedule = \"Always\" }}]\n",
        floor_items.join(", ")
    );
    let granted = granted_at
        .and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    for person in &people {
        let _ = write!(
            site,
            "\n[[people]]\nemployee_id = \"{person}\"\nname = \"{person}\"\n\
             \n[[credentials]]\nemployee_id = \"{person}\"\ncard_uid = \"{}\"\n\
             \n[[entitlements]]\nemployee_id = \"{person}\"\nlevel = \"Office floors\"\ngranted_at = {granted}\n",
            card_of[person]
        );
        if server_room.contains(person) {
            let _ = write!(
                site,
                "\n[[entitlements]]\nemployee_id = \"{person}\"\nlevel = \"Server Room\"\ngranted_at = {granted}\n"
            );
        }
    }

    let mut events = String::from("at,employee_id,card_uid,door,result\n");
    for r in &reads {
        let _ = writeln!(
            events,
            "{},{},{},{},granted",
            (r.at + shift)
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            r.prox,
            card_of[r.prox.as_str()],
            r.place.door()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    std::fs::write(args.out.join("site.toml"), site)?;
    std::fs::write(args.out.join("events.csv"), events)?;
    println!(
        "{} reads by {} cards at {} doors, {} to {} (moved by {} weeks): {}/site.toml, {}/events.csv",
        reads.len(),
        people.len(),
        places.len(),
        first + shift,
        last + shift,
        shift.num_weeks(),
        args.out.display(),
        args.out.display()
    );
    Ok(())
}
