//! The admin console under load: the dashboard, people and events pages with 100,000 people
//! and 10 million events, 50 signed-in sessions at once, timed by a load tool in a second
//! process against `gatehouse serve` in a third. Beside them, in the same run: the same
//! sessions fetching a static asset (the floor of the HTTP stack) and each page's queries
//! run alone, one at a time, straight on the same database file.
//!
//! cargo run --release -p gatehouse-bench --bin console-bench

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};
use diesel::prelude::*;
use gatehouse::entities::people::People;
use gatehouse::policy::{PeopleQuery, Snapshot};
use gatehouse::store::DbConnection;
use gatehouse::store::event_log::{DayTally, EventFilter, counts_since, recent};
use gatehouse::store::load::load_policy;
use gatehouse::store::schema::{doors, events, people, sites};
use gatehouse_bench::console_site::{self, ADMIN_PASSWORD, SURNAMES, Spec, admin_name};
use gatehouse_bench::measure::{Stats, fmt_duration, load_average, machine};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    tool: Option<Tool>,
    /// Generated people (each with a card and an access level), beside the example site's.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Events in the log, spread over `--days` up to now.
    #[arg(long, default_value_t = 10_000_000)]
    events: u64,
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Signed-in console sessions, each with its own admin and cookie, all at once.
    #[arg(long, default_value_t = 50)]
    sessions: usize,
    /// Seconds of load before each timed window (not counted).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Seconds of each timed window (the floor's, then the pages').
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Mean pause of a session between two requests, in ms (uniform from 0 to twice
    /// this); 0: each session sends its next request as soon as it has the last answer.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Rounds of every page requested by one session alone, one request at a time, before
    /// the load (stopping early after 120 s).
    #[arg(long, default_value_t = 25)]
    single_rounds: usize,
    /// Runs of each page's queries alone, straight on the database (at most 10 s each).
    #[arg(long, default_value_t = 200)]
    sql_samples: usize,
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Where the database is kept between runs. Default:
    /// $HOME/.cache/gatehouse/bench/console-<people>-<events>.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// The appliance binary. Default: built with cargo (release) and taken from beside
    /// this benchmark's own binary.
    #[arg(long)]
    gatehouse: Option<PathBuf>,
    /// The site file. Default: packaging/examples/office.toml.
    #[arg(long)]
    site: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Tool {
    /// The load tool, which the benchmark runs as a second process.
    #[command(hide = true)]
    Load(LoadArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    #[arg(long)]
    base: String,
    #[arg(long)]
    params: PathBuf,
    #[arg(long)]
    server_pid: u32,
    #[arg(long)]
    sessions: usize,
    #[arg(long)]
    warmup: u64,
    #[arg(long)]
    duration: u64,
    #[arg(long)]
    think_ms: u64,
    #[arg(long)]
    single_rounds: usize,
    #[arg(long)]
    seed: u64,
}

/// What a session asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Floor,
    Dashboard,
    People,
    PeopleSearch,
    PeopleDeep,
    Events,
    EventsPerson,
    EventsDoor,
    EventsDeep,
}

impl Kind {
    /// The console requests of a session, drawn with equal chances.
    const PAGES: [Kind; 8] = [
        Kind::Dashboard,
        Kind::People,
        Kind::PeopleSearch,
        Kind::PeopleDeep,
        Kind::Events,
        Kind::EventsPerson,
        Kind::EventsDoor,
        Kind::EventsDeep,
    ];
    const ALL: [Kind; 9] = [
        Kind::Floor,
        Kind::Dashboard,
        Kind::People,
        Kind::PeopleSearch,
        Kind::PeopleDeep,
        Kind::Events,
        Kind::EventsPerson,
        Kind::EventsDoor,
        Kind::EventsDeep,
    ];

    /// Its name between the two processes.
    fn key(self) -> &'static str {
        match self {
            Kind::Floor => "floor",
            Kind::Dashboard => "dashboard",
            Kind::People => "people",
            Kind::PeopleSearch => "people_search",
            Kind::PeopleDeep => "people_deep",
            Kind::Events => "events",
            Kind::EventsPerson => "events_person",
            Kind::EventsDoor => "events_door",
            Kind::EventsDeep => "events_deep",
        }
    }

    fn from_key(key: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.key() == key)
    }

    /// Its row in the tables.
    fn label(self) -> &'static str {
        match self {
            Kind::Floor => "floor: `GET /static/console.css`",
            Kind::Dashboard => "`GET /` (dashboard)",
            Kind::People => "`GET /people`",
            Kind::PeopleSearch => "`GET /people?q=<surname prefix>`",
            Kind::PeopleDeep => "`GET /people?page=<2..last>`",
            Kind::Events => "`GET /events`",
            Kind::EventsPerson => "`GET /events?person=<employee id>`",
            Kind::EventsDoor => "`GET /events?door=<id>`",
            Kind::EventsDeep => "`GET /events?before_id=<random id>`",
        }
    }
}

/// What the load tool draws its requests from (written by the benchmark, read by the tool).
struct Params {
    doors: Vec<i64>,
    /// Employee id and person id of people to look up.
    employees: Vec<(String, i64)>,
    /// Lower-case first letters of surnames, as typed into the search box.
    prefixes: Vec<String>,
    people_pages: i64,
    first_event: i64,
    last_event: i64,
}

impl Params {
    fn write(&self, path: &Path) -> Result<()> {
        let join = |v: Vec<String>| v.join(" ");
        let text = format!(
            "doors {}\nemployees {}\nprefixes {}\npeople_pages {}\nevents {} {}\n",
            join(self.doors.iter().map(i64::to_string).collect()),
            join(
                self.employees
                    .iter()
                    .map(|(e, id)| format!("{e}:{id}"))
                    .collect()
            ),
            join(self.prefixes.clone()),
            self.people_pages,
            self.first_event,
            self.last_event
        );
        std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    fn read(path: &Path) -> Result<Params> {
        let text = std::fs::read_to_string(path)?;
        let mut params = Params {
            doors: Vec::new(),
            employees: Vec::new(),
            prefixes: Vec::new(),
            people_pages: 1,
            first_event: 1,
            last_event: 1,
        };
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let key = words.next().unwrap_or_default();
            let rest: Vec<&str> = words.collect();
            match key {
                "doors" => {
                    params.doors = rest.iter().map(|w| w.parse()).collect::<Result<_, _>>()?;
                }
                "employees" => {
                    for w in rest {
                        let (e, id) = w.split_once(':').context("employee:id")?;
                        params.employees.push((e.to_owned(), id.parse()?));
                    }
                }
                "prefixes" => params.prefixes = rest.iter().map(|w| (*w).to_owned()).collect(),
                "people_pages" => params.people_pages = rest.first().context("pages")?.parse()?,
                "events" => {
                    params.first_event = rest.first().context("first event")?.parse()?;
                    params.last_event = rest.get(1).context("last event")?.parse()?;
                }
                _ => {}
            }
        }
        if params.doors.is_empty() || params.employees.is_empty() || params.prefixes.is_empty() {
            bail!("the parameters file {} is incomplete", path.display());
        }
        Ok(params)
    }
}

/// One request with its drawn parameters.
#[derive(Debug, Clone)]
enum Request {
    Floor,
    Dashboard,
    People,
    PeopleSearch(String),
    PeopleDeep(i64),
    Events,
    EventsPerson(String, i64),
    EventsDoor(i64),
    EventsDeep(i64),
}

impl Request {
    fn draw(kind: Kind, params: &Params, rng: &mut StdRng) -> Request {
        let pick = |rng: &mut StdRng, n: usize| rng.random_range(0..n.max(1));
        match kind {
            Kind::Floor => Request::Floor,
            Kind::Dashboard => Request::Dashboard,
            Kind::People => Request::People,
            Kind::PeopleSearch => {
                Request::PeopleSearch(params.prefixes[pick(rng, params.prefixes.len())].clone())
            }
            Kind::PeopleDeep => {
                Request::PeopleDeep(rng.random_range(2..=params.people_pages.max(2)))
            }
            Kind::Events => Request::Events,
            Kind::EventsPerson => {
                let (employee, id) = params.employees[pick(rng, params.employees.len())].clone();
                Request::EventsPerson(employee, id)
            }
            Kind::EventsDoor => Request::EventsDoor(params.doors[pick(rng, params.doors.len())]),
            Kind::EventsDeep => Request::EventsDeep(
                rng.random_range(params.first_event..=params.last_event.max(params.first_event)),
            ),
        }
    }

    fn kind(&self) -> Kind {
        match self {
            Request::Floor => Kind::Floor,
            Request::Dashboard => Kind::Dashboard,
            Request::People => Kind::People,
            Request::PeopleSearch(_) => Kind::PeopleSearch,
            Request::PeopleDeep(_) => Kind::PeopleDeep,
            Request::Events => Kind::Events,
            Request::EventsPerson(..) => Kind::EventsPerson,
            Request::EventsDoor(_) => Kind::EventsDoor,
            Request::EventsDeep(_) => Kind::EventsDeep,
        }
    }

    fn path(&self) -> String {
        match self {
            Request::Floor => "/static/console.css".to_owned(),
            Request::Dashboard => "/".to_owned(),
            Request::People => "/people".to_owned(),
            Request::PeopleSearch(q) => format!("/people?q={}", form_encode(q)),
            Request::PeopleDeep(page) => format!("/people?page={page}"),
            Request::Events => "/events".to_owned(),
            Request::EventsPerson(employee, _) => {
                format!("/events?person={}", form_encode(employee))
            }
            Request::EventsDoor(door) => format!("/events?door={door}"),
            Request::EventsDeep(id) => format!("/events?before_id={id}"),
        }
    }

    /// The page's own data work, as its handler does it (same library functions, same
    /// filters and page sizes), on `conn` and the live policy `snapshot`; `tally` is the
    /// dashboard's, kept from one run to the next as the appliance keeps it.
    fn run_queries(&self, on: &mut Reference<'_>, now: DateTime<Utc>) -> Result<usize> {
        const PEOPLE_PAGE: usize = 50;
        const EVENTS_PAGE: i64 = 51; // a page and one more, to know whether there is a next
        let Reference {
            conn,
            snapshot,
            tally,
            tz,
        } = on;
        let conn: &mut DbConnection = conn;
        let people_page = |conn: &mut DbConnection, text: Option<&str>, page: usize| {
            let found = snapshot.find_people(
                PeopleQuery { text, status: None },
                (page - 1) * PEOPLE_PAGE,
                PEOPLE_PAGE,
            );
            People::in_order(conn, &found.ids).map(|rows| rows.len())
        };
        let events = |conn: &mut DbConnection, filter: EventFilter| {
            recent(conn, &filter, EVENTS_PAGE).map(|rows| rows.len())
        };
        Ok(match self {
            Request::Floor => 0,
            Request::Dashboard => {
                let counts = tally.counts_since(conn, local_midnight(now, *tz), now)?;
                let feed = recent(conn, &EventFilter::default(), 25)?;
                counts.len() + feed.len()
            }
            Request::People => people_page(conn, None, 1)?,
            Request::PeopleSearch(q) => people_page(conn, Some(q), 1)?,
            Request::PeopleDeep(page) => {
                people_page(conn, None, usize::try_from(*page).unwrap_or(1).max(1))?
            }
            Request::Events => events(conn, EventFilter::default())?,
            Request::EventsPerson(_, id) => events(
                conn,
                EventFilter {
                    person_id: Some(*id),
                    ..EventFilter::default()
                },
            )?,
            Request::EventsDoor(door) => events(
                conn,
                EventFilter {
                    door_id: Some(*door),
                    ..EventFilter::default()
                },
            )?,
            Request::EventsDeep(id) => events(
                conn,
                EventFilter {
                    before_id: Some(*id),
                    ..EventFilter::default()
                },
            )?,
        })
    }
}

/// `application/x-www-form-urlencoded` for a value.
fn form_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Midnight of today on the site's clock, as the dashboard counts "today".
fn local_midnight(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    now.with_timezone(&tz)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|m| m.and_local_timezone(tz).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

fn main() -> Result<()> {
    let args = Args::parse();
    match args.tool {
        Some(Tool::Load(ref load)) => run_load(load),
        None => run(&args),
    }
}

// ---------------------------------------------------------------------------------------
// The benchmark: database, appliance, references, load tool, report.
// ---------------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run(args: &Args) -> Result<()> {
    let now = Utc::now();
    println!("# console-bench");
    println!();
    println!("machine: {}", machine());
    println!(
        "nproc: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if let Ok(kernel) = std::fs::read_to_string("/proc/sys/kernel/osrelease") {
        println!("kernel: Linux {}", kernel.trim());
    }
    println!(
        "load average before: {}",
        load_average().unwrap_or_else(|| "unknown".to_owned())
    );
    println!("run at: {}", now.format("%Y-%m-%d %H:%M:%S UTC"));

    // The database.
    let cache_dir = match &args.cache_dir {
        Some(dir) => dir.clone(),
        None => {
            let home = std::env::var_os("HOME").context("HOME is not set; pass --cache-dir")?;
            PathBuf::from(home)
                .join(".cache/gatehouse/bench")
                .join(format!("console-{}-{}", args.people, args.events))
        }
    };
    let site = args
        .site
        .clone()
        .unwrap_or_else(|| repo_root().join("packaging/examples/office.toml"));
    let spec = Spec {
        people: args.people,
        events: args.events,
        days: args.days,
        admins: args.sessions,
        seed: args.seed,
    };
    let prepared = console_site::prepare(&cache_dir, &site, &spec, now)?;
    println!(
        "database: {} ({}, {:.1} s{})",
        prepared.path.display(),
        if prepared.built { "built" } else { "reused" },
        prepared.took.as_secs_f64(),
        if prepared.built {
            String::new()
        } else {
            format!(", {} events added to reach the present", prepared.topped_up)
        }
    );
    let (bytes, took) = read_through(&prepared.path)?;
    println!(
        "page cache: the database file read through once before timing ({:.2} GiB in {:.1} s, \
         {:.0} MiB/s)",
        bytes as f64 / f64::from(1u32 << 30),
        took.as_secs_f64(),
        bytes as f64 / f64::from(1u32 << 20) / took.as_secs_f64().max(1e-9)
    );
    let url = format!("sqlite://{}", prepared.path.display());
    let pool = gatehouse::store::open(&url, 2)?;
    gatehouse::store::migrate(&mut *pool.get()?)?;
    let facts = DatabaseFacts::read(&mut *pool.get()?, now, args.seed)?;
    let db_bytes = std::fs::metadata(&prepared.path).map_or(0, |m| m.len());
    println!(
        "data: {} people, {} doors, {} events (ids {}..{}), {} of them since midnight on the \
         site's clock ({}); file {:.2} GiB",
        facts.people,
        facts.params.doors.len(),
        facts.events,
        facts.params.first_event,
        facts.params.last_event,
        facts.today,
        facts.tz,
        db_bytes as f64 / f64::from(1u32 << 30)
    );

    // The appliance binary.
    let gatehouse = match &args.gatehouse {
        Some(path) => path.clone(),
        None => build_gatehouse()?,
    };
    println!("appliance: {}", gatehouse.display());
    println!("source: {}", source_state());

    // Reference 1: each page's queries alone, one at a time, on the same file.
    eprintln!("timing each page's queries alone …");
    let mut conn = pool.get()?;
    let snapshot = {
        let loaded = load_policy(&mut conn)?;
        Snapshot::compile(&loaded.data, Utc::now())?
    };
    // The first people page after every policy change sorts the new snapshot's people.
    let t = Instant::now();
    let first = snapshot.find_people(PeopleQuery::default(), 0, 50);
    println!(
        "the people directory's build on a new snapshot ({} people): {}",
        first.total,
        fmt_duration(t.elapsed())
    );
    let sql = sql_alone(
        &mut Reference {
            conn: &mut conn,
            snapshot,
            tally: DayTally::default(),
            tz: facts.tz,
        },
        &facts.params,
        args.sql_samples,
        args.seed,
    )?;
    drop(conn);
    // The dashboard counts the events since midnight on the site's clock, so its cost grows
    // through the day: the same count over a whole day is its cost just before midnight.
    let full_day = {
        let mut conn = pool.get()?;
        let mut times = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let counts = counts_since(&mut conn, Utc::now() - chrono::TimeDelta::days(1))?;
            times.push(t.elapsed());
            std::hint::black_box(counts);
        }
        Stats::of(times)
    };
    drop(pool);

    // The appliance, as a process of its own.
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{data}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n[database]\n\
             url = \"{url}\"\n\n[mqtt]\nbroker = \"embedded\"\nlisten = \"127.0.0.1:0\"\n\n\
             [modbus]\nenabled = false\n\n[events]\nretention_days = 0\n",
            data = dir.path().join("data").display(),
        ),
    )?;
    let log_path = dir.path().join("gatehouse.log");
    let log = std::fs::File::create(&log_path)?;
    let server = Command::new(&gatehouse)
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("GATEHOUSE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", gatehouse.display()))?;
    let mut server = Server {
        child: server,
        log: log_path,
    };
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    server.wait_healthy(&base, Duration::from_secs(300))?;
    println!(
        "appliance ready in {:.1} s (pid {}, embedded MQTT broker on a free port, Modbus off, \
         2 HTTP workers, database pool 8, event retention off)",
        started.elapsed().as_secs_f64(),
        server.child.id()
    );

    // The load tool, as a second process.
    let params_path = dir.path().join("params.txt");
    facts.params.write(&params_path)?;
    eprintln!(
        "load: {} sessions, floor then pages, {} s warm-up + {} s each …",
        args.sessions, args.warmup, args.duration
    );
    let output = Command::new(std::env::current_exe()?)
        .arg("load")
        .args(["--base", &base])
        .arg("--params")
        .arg(&params_path)
        .args(["--server-pid", &server.child.id().to_string()])
        .args(["--sessions", &args.sessions.to_string()])
        .args(["--warmup", &args.warmup.to_string()])
        .args(["--duration", &args.duration.to_string()])
        .args(["--think-ms", &args.think_ms.to_string()])
        .args(["--single-rounds", &args.single_rounds.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the load tool")?;
    let load_after = load_average().unwrap_or_else(|| "unknown".to_owned());
    server.stop();
    if !output.status.success() {
        bail!("the load tool failed ({})", output.status);
    }
    let results = LoadResults::parse(&String::from_utf8_lossy(&output.stdout))?;
    println!("load average after: {load_after}");
    report(args, &results, &sql);
    println!(
        "the dashboard's count of today's events over a whole day (its cost just before \
         midnight, {} events), alone: p50 {} ms, p99 {} ms",
        facts.last_day,
        ms(full_day.p50),
        ms(full_day.p99)
    );
    Ok(())
}

/// The commit the appliance was built from, and whether the tree had uncommitted changes
/// to the appliance's sources.
fn source_state() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo_root())
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown (no git)".to_owned();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--",
        "server",
        "templates",
        "static",
        "migrations",
        "drivers",
    ])
    .is_some_and(|s| !s.is_empty());
    format!(
        "commit {head}{}",
        if dirty {
            " with uncommitted changes to the appliance's sources"
        } else {
            ""
        }
    )
}

/// Reads a file from start to end, so that what the page cache can hold of it is in it.
fn read_through(path: &Path) -> Result<(u64, Duration)> {
    use std::io::Read;
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut buffer = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total % (256 << 20) < n as u64 {
            eprint!(
                "\rreading the database file into the page cache: {} MiB",
                total >> 20
            );
        }
    }
    eprintln!();
    Ok((total, started.elapsed()))
}

/// What the benchmark needs to know of the database.
struct DatabaseFacts {
    people: i64,
    events: i64,
    /// Events since midnight on the site's clock (what the dashboard counts).
    today: i64,
    /// Events in the last 24 hours.
    last_day: i64,
    tz: Tz,
    params: Params,
}

impl DatabaseFacts {
    fn read(conn: &mut DbConnection, now: DateTime<Utc>, seed: u64) -> Result<DatabaseFacts> {
        let tz_name: String = sites::table
            .select(sites::timezone)
            .order(sites::id)
            .first(conn)?;
        let tz: Tz = tz_name
            .parse()
            .map_err(|e| anyhow!("site timezone {tz_name}: {e}"))?;
        let people_count: i64 = people::table.count().get_result(conn)?;
        let first_event: Option<i64> = events::table
            .select(diesel::dsl::min(events::id))
            .first(conn)?;
        let last_event: Option<i64> = events::table
            .select(diesel::dsl::max(events::id))
            .first(conn)?;
        // Ids have no gaps (see `console_site::event_ids`): no need to count 10 million rows.
        let events_count = last_event.unwrap_or(0) - first_event.unwrap_or(1) + 1;
        let midnight = local_midnight(now, tz).naive_utc();
        let today: i64 = events::table
            .filter(events::at.ge(midnight))
            .count()
            .get_result(conn)?;
        let last_day: i64 = events::table
            .filter(events::at.ge((now - chrono::TimeDelta::days(1)).naive_utc()))
            .count()
            .get_result(conn)?;
        let doors: Vec<i64> = doors::table.select(doors::id).order(doors::id).load(conn)?;
        // People to look up: a random thousand of the generated ones.
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
        let generated: Vec<(String, i64)> = people::table
            .filter(people::employee_id.like("B%"))
            .select((people::employee_id, people::id))
            .load(conn)?;
        let employees: Vec<(String, i64)> = (0..1000.min(generated.len()))
            .map(|_| generated[rng.random_range(0..generated.len())].clone())
            .collect();
        let mut prefixes: Vec<String> = SURNAMES
            .split_whitespace()
            .filter(|s| s.is_ascii())
            .map(|s| s.chars().take(3).collect::<String>().to_lowercase())
            .collect();
        prefixes.sort();
        prefixes.dedup();
        Ok(DatabaseFacts {
            people: people_count,
            events: events_count,
            today,
            last_day,
            tz,
            params: Params {
                doors,
                employees,
                prefixes,
                people_pages: ((people_count + 49) / 50).max(1),
                first_event: first_event.unwrap_or(1),
                last_event: last_event.unwrap_or(1),
            },
        })
    }
}

/// Builds the appliance (release) with the cargo that runs this benchmark, and returns the
/// binary beside this one.
fn build_gatehouse() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the appliance (cargo build --release -p gatehouse --bin gatehouse) …");
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "gatehouse",
            "--bin",
            "gatehouse",
        ])
        .arg("--manifest-path")
        .arg(repo_root().join("Cargo.toml"))
        .status()
        .context("cannot run cargo; pass --gatehouse PATH")?;
    if !status.success() {
        bail!("building the appliance failed; pass --gatehouse PATH to use a built one");
    }
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .context("this binary has no folder")?
        .join("gatehouse");
    if !path.exists() {
        bail!(
            "no appliance binary at {} (is CARGO_TARGET_DIR the same as when this benchmark \
             was built?); pass --gatehouse PATH",
            path.display()
        );
    }
    Ok(path)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The appliance process; stopped (SIGTERM, then SIGKILL) when dropped.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Server {
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    fn wait_healthy(&mut self, base: &str, timeout: Duration) -> Result<()> {
        let agent = agent();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the appliance exited ({status}) before it was ready:\n{}",
                    self.log_tail()
                );
            }
            if let Ok(response) = agent.get(&format!("{base}/healthz")).call()
                && response.status().as_u16() == 200
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the appliance was not healthy after {timeout:?}:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a page's data work runs on, outside the appliance.
struct Reference<'a> {
    conn: &'a mut DbConnection,
    /// The live policy as the appliance compiles it from the same file.
    snapshot: Snapshot,
    tally: DayTally,
    tz: Tz,
}

/// Per page: its queries alone, one at a time (after one untimed run of each).
fn sql_alone(
    on: &mut Reference<'_>,
    params: &Params,
    samples: usize,
    seed: u64,
) -> Result<BTreeMap<Kind, Stats>> {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5017);
    let now = Utc::now();
    for kind in Kind::PAGES {
        Request::draw(kind, params, &mut rng).run_queries(on, now)?;
    }
    let mut out = BTreeMap::new();
    for kind in Kind::PAGES {
        let mut times = Vec::with_capacity(samples);
        let started = Instant::now();
        while times.len() < samples.max(1)
            && (times.len() < 20 || started.elapsed() < Duration::from_secs(10))
        {
            let request = Request::draw(kind, params, &mut rng);
            let t = Instant::now();
            let rows = request.run_queries(on, Utc::now())?;
            times.push(t.elapsed());
            std::hint::black_box(rows);
        }
        out.insert(kind, Stats::of(times));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// The load tool (a second process).
// ---------------------------------------------------------------------------------------

/// How long the load tool waits for an answer before counting the request as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(REQUEST_TIMEOUT))
        .build()
        .new_agent()
}

/// A signed-in console session: its own connection and cookie.
struct Session {
    agent: ureq::Agent,
    base: String,
    cookie: String,
}

fn set_cookie(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.to_owned())
}

impl Session {
    /// Signs in as a browser does: the form (its CSRF token and cookie), then the post.
    fn sign_in(base: &str, username: &str) -> Result<Session> {
        let agent = agent();
        let mut form = agent.get(&format!("{base}/login")).call()?;
        let csrf_cookie = set_cookie(&form, "gatehouse_sign_in").context("no sign-in cookie")?;
        let body = form.body_mut().read_to_string()?;
        const FIELD: &str = "name=\"csrf\" value=\"";
        let at = body
            .find(FIELD)
            .context("no csrf field on the sign-in form")?
            + FIELD.len();
        let csrf = body[at..]
            .split('"')
            .next()
            .context("unterminated csrf field")?;
        let posted = format!(
            "csrf={}&next=%2F&username={}&password={}",
            form_encode(csrf),
            form_encode(username),
            form_encode(ADMIN_PASSWORD)
        );
        let mut response = agent
            .post(&format!("{base}/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", &format!("gatehouse_sign_in={csrf_cookie}"))
            .header("Sec-Fetch-Site", "same-origin")
            .send(posted.as_bytes())?;
        let status = response.status().as_u16();
        let session = set_cookie(&response, "gatehouse_session");
        let Some(session) = session.filter(|_| status == 303) else {
            let body = response.body_mut().read_to_string().unwrap_or_default();
            bail!(
                "{username} could not sign in (HTTP {status}): {}",
                body.chars().take(300).collect::<String>()
            );
        };
        Ok(Session {
            agent,
            base: base.to_owned(),
            cookie: format!("gatehouse_session={session}"),
        })
    }

    /// GETs a path and reads the whole answer; its status, its length, a note on anything
    /// but 200, and the server's own time for it (its `Server-Timing: app;dur=` header).
    fn get(&self, path: &str) -> Result<(u16, usize, String, Option<Duration>)> {
        let mut response = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .call()?;
        let status = response.status().as_u16();
        let server = response
            .headers()
            .get("server-timing")
            .and_then(|v| v.to_str().ok())
            .and_then(server_time);
        let body = response.body_mut().read_to_vec()?;
        let note = if status == 200 {
            String::new()
        } else {
            let location = response
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            format!(
                "location {location:?}: {}",
                String::from_utf8_lossy(&body)
                    .chars()
                    .take(200)
                    .collect::<String>()
            )
        };
        Ok((status, body.len(), note, server))
    }
}

/// The `app` entry's duration of a `Server-Timing` header (`app;dur=1.23`, milliseconds).
fn server_time(header: &str) -> Option<Duration> {
    header.split(',').find_map(|entry| {
        let mut parts = entry.trim().split(';');
        if parts.next()?.trim() != "app" {
            return None;
        }
        let ms: f64 = parts
            .find_map(|p| p.trim().strip_prefix("dur="))?
            .parse()
            .ok()?;
        Some(Duration::from_secs_f64(ms.max(0.0) / 1e3))
    })
}

/// One timed request.
struct Sample {
    phase: &'static str,
    kind: Kind,
    latency: Duration,
    status: u16,
    bytes: usize,
    /// The appliance's own time for it, from its Server-Timing header.
    server: Option<Duration>,
}

/// The two phases, one after the other: the floor, then the pages.
const PHASES: [&str; 2] = ["floor", "pages"];

fn run_load(args: &LoadArgs) -> Result<()> {
    let params = Arc::new(Params::read(&args.params)?);
    // Sign-ins check argon2id one at a time on the appliance: done before any timing.
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(args.sessions);
    for i in 0..args.sessions {
        eprint!("\rsigning in: {}/{}", i + 1, args.sessions);
        sessions.push(Session::sign_in(&args.base, &admin_name(i))?);
    }
    eprintln!();
    println!("signin {} {}", args.sessions, started.elapsed().as_nanos());

    // One session alone, one request at a time: each page's time without queueing.
    if let Some(session) = sessions.first() {
        let mut rng = StdRng::seed_from_u64(args.seed ^ 0x51);
        let started = Instant::now();
        for round in 0..args.single_rounds {
            if started.elapsed() > Duration::from_secs(120) {
                break;
            }
            eprint!(
                "\rone session alone: round {}/{}",
                round + 1,
                args.single_rounds
            );
            for kind in Kind::PAGES {
                let request = Request::draw(kind, &params, &mut rng);
                let t = Instant::now();
                let (status, _, _, server) = session
                    .get(&request.path())
                    .unwrap_or_else(|e| (0, 0, e.to_string(), None));
                println!(
                    "sample single {} {} {status} 0 {}",
                    kind.key(),
                    t.elapsed().as_nanos(),
                    server.map_or("-".to_owned(), |d| d.as_nanos().to_string())
                );
            }
        }
        eprintln!();
    }
    let warmup = Duration::from_secs(args.warmup);
    let window = Duration::from_secs(args.duration);
    let phase_length = warmup + window;
    let end = phase_length * PHASES.len() as u32;
    let start = Instant::now() + Duration::from_millis(100);

    // CPU of the appliance and of this tool over each timed window.
    let server_pid = args.server_pid;
    let sampler = std::thread::spawn(move || {
        let mut lines = Vec::new();
        for (i, phase) in PHASES.iter().enumerate() {
            let from = start + phase_length * i as u32 + warmup;
            let to = from + window;
            sleep_until(from);
            let (server0, self0, machine0, t0) = (
                process_total_cpu(server_pid).unwrap_or_default(),
                process_total_cpu(std::process::id()).unwrap_or_default(),
                machine_cpu().unwrap_or_default(),
                Instant::now(),
            );
            sleep_until(to);
            let (server1, self1, machine1, t1) = (
                process_total_cpu(server_pid).unwrap_or_default(),
                process_total_cpu(std::process::id()).unwrap_or_default(),
                machine_cpu().unwrap_or_default(),
                Instant::now(),
            );
            lines.push(format!(
                "window {phase} {} {} {} {} {} {}",
                (t1 - t0).as_nanos(),
                server1.saturating_sub(server0).as_nanos(),
                self1.saturating_sub(self0).as_nanos(),
                machine1[0].saturating_sub(machine0[0]),
                machine1[1].saturating_sub(machine0[1]),
                machine1[2].saturating_sub(machine0[2]),
            ));
        }
        lines
    });

    // /healthz once every 500 ms through the pages' timed window, on a connection of its
    // own: what monitoring sees while the console is busy (it reads the database too).
    let probe_base = args.base.clone();
    let probe = std::thread::spawn(move || {
        let agent = agent();
        let from = start + phase_length + warmup;
        let to = from + window;
        let mut lines = Vec::new();
        let mut next = from;
        sleep_until(next);
        while Instant::now() < to {
            let t = Instant::now();
            let status = agent
                .get(&format!("{probe_base}/healthz"))
                .call()
                .map_or(0, |mut r| {
                    let _ = r.body_mut().read_to_vec();
                    r.status().as_u16()
                });
            lines.push(format!("probe {} {status}", t.elapsed().as_nanos()));
            next += Duration::from_millis(500);
            sleep_until(next);
        }
        lines
    });

    let mut workers = Vec::with_capacity(sessions.len());
    for (i, session) in sessions.into_iter().enumerate() {
        let params = params.clone();
        let think = Duration::from_millis(args.think_ms);
        let mut rng = StdRng::seed_from_u64(args.seed.wrapping_add(1 + i as u64));
        workers.push(std::thread::spawn(
            move || -> Result<(Vec<Sample>, Vec<String>)> {
                let mut samples = Vec::new();
                let mut errors = Vec::new();
                sleep_until(start);
                // Sessions start spread over the first request time, not all at one instant.
                std::thread::sleep(Duration::from_micros(rng.random_range(0..2_000)));
                loop {
                    let at = start.elapsed();
                    if at >= end {
                        break;
                    }
                    let phase_index = (at.as_nanos() / phase_length.as_nanos().max(1)) as usize;
                    let phase = PHASES[phase_index.min(PHASES.len() - 1)];
                    let timed = at - phase_length * phase_index as u32 >= warmup;
                    let kind = if phase == "floor" {
                        Kind::Floor
                    } else {
                        Kind::PAGES[rng.random_range(0..Kind::PAGES.len())]
                    };
                    let request = Request::draw(kind, &params, &mut rng);
                    let path = request.path();
                    let t = Instant::now();
                    // A request that fails (a timeout, a closed connection) is counted as an
                    // answer other than 200, with the time it took to fail.
                    let (status, bytes, note, server) = session
                        .get(&path)
                        .unwrap_or_else(|e| (0, 0, format!("no answer: {e}"), None));
                    let latency = t.elapsed();
                    if status != 200 && errors.len() < 5 {
                        errors.push(format!(
                            "GET {path}: HTTP {status} after {} {note}",
                            fmt_duration(latency)
                        ));
                    }
                    if timed {
                        samples.push(Sample {
                            phase,
                            kind: request.kind(),
                            latency,
                            status,
                            bytes,
                            server,
                        });
                    }
                    if !think.is_zero() {
                        let pause = rng.random_range(0..=2 * think.as_micros() as u64);
                        std::thread::sleep(Duration::from_micros(pause));
                    }
                }
                Ok((samples, errors))
            },
        ));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for worker in workers {
        let (samples, errors) = worker
            .join()
            .map_err(|_| anyhow!("a session thread panicked"))??;
        for s in samples {
            writeln!(
                out,
                "sample {} {} {} {} {} {}",
                s.phase,
                s.kind.key(),
                s.latency.as_nanos(),
                s.status,
                s.bytes,
                s.server
                    .map_or("-".to_owned(), |d| d.as_nanos().to_string())
            )?;
        }
        for e in errors {
            writeln!(out, "error {}", e.replace('\n', " "))?;
        }
    }
    for line in sampler
        .join()
        .map_err(|_| anyhow!("the CPU sampler panicked"))?
    {
        writeln!(out, "{line}")?;
    }
    for line in probe
        .join()
        .map_err(|_| anyhow!("the health probe panicked"))?
    {
        writeln!(out, "{line}")?;
    }
    out.flush()?;
    Ok(())
}

/// CPU time used so far by a process, its ended threads included (`utime` + `stime` of
/// /proc/PID/stat; per-thread figures lose the threads that ended, and the appliance's
/// blocking pool ends idle threads). Linux counts these in USER_HZ ticks, 100 a second.
fn process_total_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The whole machine's CPU time so far, in clock ticks, from the first line of /proc/stat:
/// busy (user, nice, system, irq, softirq, steal), waiting for I/O, and all.
fn machine_cpu() -> Option<[u64; 3]> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| fields.get(i).copied().unwrap_or(0);
    let busy = get(0) + get(1) + get(2) + get(5) + get(6) + get(7);
    Some([busy, get(4), fields.iter().sum()])
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

// ---------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------

/// Per kind: the timed requests' latencies, how many were not 200, and the bytes.
#[derive(Default)]
struct KindResult {
    latencies: Vec<Duration>,
    /// The appliance's own times (Server-Timing), where it sent one.
    server: Vec<Duration>,
    failed: usize,
    bytes: usize,
}

#[derive(Default)]
struct Window {
    seconds: f64,
    server_cpu: Duration,
    load_cpu: Duration,
    /// Share of the whole machine's CPU time that was busy, and waiting for I/O.
    machine_busy: f64,
    machine_iowait: f64,
}

#[derive(Default)]
struct LoadResults {
    sign_in: Duration,
    /// One session alone, one request at a time.
    single: BTreeMap<Kind, KindResult>,
    /// All sessions at once, in the timed windows.
    kinds: BTreeMap<Kind, KindResult>,
    windows: BTreeMap<String, Window>,
    errors: Vec<String>,
    /// /healthz during the pages' window: latency and status.
    probes: Vec<(Duration, u16)>,
}

impl LoadResults {
    fn parse(text: &str) -> Result<LoadResults> {
        let mut results = LoadResults::default();
        for line in text.as_bytes().lines() {
            let line = line?;
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first().copied() {
                Some("signin") => {
                    results.sign_in =
                        Duration::from_nanos(words.get(2).context("signin")?.parse()?);
                }
                Some("sample") => {
                    let kind =
                        Kind::from_key(words.get(2).context("kind")?).context("unknown kind")?;
                    let entry = if words.get(1) == Some(&"single") {
                        results.single.entry(kind).or_default()
                    } else {
                        results.kinds.entry(kind).or_default()
                    };
                    entry
                        .latencies
                        .push(Duration::from_nanos(words.get(3).context("ns")?.parse()?));
                    if *words.get(4).context("status")? != "200" {
                        entry.failed += 1;
                    }
                    entry.bytes += words.get(5).context("bytes")?.parse::<usize>()?;
                    if let Some(ns) = words.get(6).and_then(|w| w.parse().ok()) {
                        entry.server.push(Duration::from_nanos(ns));
                    }
                }
                Some("window") => {
                    let nanos =
                        |i: usize| -> Result<u64> { Ok(words.get(i).context("window")?.parse()?) };
                    let all = nanos(7)?.max(1) as f64;
                    results.windows.insert(
                        (*words.get(1).context("phase")?).to_owned(),
                        Window {
                            seconds: Duration::from_nanos(nanos(2)?).as_secs_f64(),
                            server_cpu: Duration::from_nanos(nanos(3)?),
                            load_cpu: Duration::from_nanos(nanos(4)?),
                            machine_busy: nanos(5)? as f64 / all,
                            machine_iowait: nanos(6)? as f64 / all,
                        },
                    );
                }
                Some("probe") => {
                    results.probes.push((
                        Duration::from_nanos(words.get(1).context("probe")?.parse()?),
                        words.get(2).context("probe status")?.parse()?,
                    ));
                }
                Some("error") => results.errors.push(line.clone()),
                _ => {}
            }
        }
        Ok(results)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn report(args: &Args, results: &LoadResults, sql: &BTreeMap<Kind, Stats>) {
    let target = Duration::from_millis(50);
    println!(
        "sign-in of {} sessions (one after another): {}",
        args.sessions,
        fmt_duration(results.sign_in)
    );
    println!(
        "load: {} sessions, {} s warm-up + {} s timed, floor then pages, think time {}",
        args.sessions,
        args.warmup,
        args.duration,
        if args.think_ms == 0 {
            "none (each session asks again as soon as it has its answer)".to_owned()
        } else {
            format!("uniform 0–{} ms", 2 * args.think_ms)
        }
    );
    let rounds = results
        .single
        .values()
        .map(|r| r.latencies.len())
        .max()
        .unwrap_or(0);
    println!(
        "before the load, one session alone asked for every page in turn, {rounds} times, one \
         request at a time"
    );
    println!();
    println!(
        "Latency is client-side in the load tool (request written → whole body read) over \
         loopback keep-alive connections; the transport's share is in the floor's figures. \
         Server time is the appliance's own (its Server-Timing header: the request reaching \
         the app → the response ready), without the time a request waits to be read."
    );
    println!();
    let floor = results
        .kinds
        .get(&Kind::Floor)
        .map(|k| Stats::of(k.latencies.clone()));
    println!(
        "| request | one session alone: p50 / p99 ms | {} sessions: requests | req/s | p50 ms | p99 ms | max ms | p99 ÷ floor p99 | server time p50 / p99 / max ms | queries alone p50 / p99 ms | server p99 ≤ 50 ms | client p99 ≤ 50 ms |",
        args.sessions
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|");
    let verdict = |p99: Duration| if p99 <= target { "met" } else { "**not met**" };
    let server_of = |times: &[Duration]| {
        if times.is_empty() {
            ("–".to_owned(), None)
        } else {
            let s = Stats::of(times.to_vec());
            (
                format!("{} / {} / {}", ms(s.p50), ms(s.p99), ms(s.max)),
                Some(s.p99),
            )
        }
    };
    let window_of = |kind: Kind| {
        results
            .windows
            .get(if kind == Kind::Floor {
                "floor"
            } else {
                "pages"
            })
            .map_or(args.duration as f64, |w| w.seconds)
    };
    let (mut all_pages, mut all_server) = (Vec::new(), Vec::new());
    for (kind, result) in &results.kinds {
        let stats = Stats::of(result.latencies.clone());
        if *kind != Kind::Floor {
            all_pages.extend_from_slice(&result.latencies);
            all_server.extend_from_slice(&result.server);
        }
        let (server, server_p99) = server_of(&result.server);
        let ratio = floor.map_or(0.0, |f| gatehouse_bench::measure::ratio(stats.p99, f.p99));
        let alone = sql.get(kind).map_or("–".to_owned(), |s| {
            format!("{} / {}", ms(s.p50), ms(s.p99))
        });
        let single = results.single.get(kind).map_or("–".to_owned(), |r| {
            let s = Stats::of(r.latencies.clone());
            format!(
                "{} / {}{}",
                ms(s.p50),
                ms(s.p99),
                if r.failed > 0 {
                    format!(" ({} not 200)", r.failed)
                } else {
                    String::new()
                }
            )
        });
        println!(
            "| {} | {single} | {}{} | {:.0} | {} | {} | {} | {} | {server} | {} | {} | {} |",
            kind.label(),
            stats.n,
            if result.failed > 0 {
                format!(" ({} not 200)", result.failed)
            } else {
                String::new()
            },
            stats.n as f64 / window_of(*kind),
            ms(stats.p50),
            ms(stats.p99),
            ms(stats.max),
            if *kind == Kind::Floor {
                "1".to_owned()
            } else {
                format!("{ratio:.1}")
            },
            alone,
            match (kind, server_p99) {
                (Kind::Floor, _) | (_, None) => "–",
                (_, Some(p99)) => verdict(p99),
            },
            if *kind == Kind::Floor {
                "–"
            } else {
                verdict(stats.p99)
            }
        );
    }
    let all = Stats::of(all_pages);
    let ratio = floor.map_or(0.0, |f| gatehouse_bench::measure::ratio(all.p99, f.p99));
    let (server, server_p99) = server_of(&all_server);
    println!(
        "| all pages | – | {} | {:.0} | {} | {} | {} | {ratio:.1} | {server} | – | {} | {} |",
        all.n,
        all.n as f64 / window_of(Kind::Dashboard),
        ms(all.p50),
        ms(all.p99),
        ms(all.max),
        server_p99.map_or("–", verdict),
        verdict(all.p99)
    );
    println!();
    for (phase, w) in &results.windows {
        let n: usize = results
            .kinds
            .iter()
            .filter(|(k, _)| (**k == Kind::Floor) == (phase == "floor"))
            .map(|(_, r)| r.latencies.len())
            .sum();
        let bytes: usize = results
            .kinds
            .iter()
            .filter(|(k, _)| (**k == Kind::Floor) == (phase == "floor"))
            .map(|(_, r)| r.bytes)
            .sum();
        println!(
            "{phase} window: {:.1} s; appliance CPU {:.0}% of one core ({} per request), load \
             tool CPU {:.0}%; the whole machine {:.0}% busy, {:.0}% waiting for I/O; {:.1} KiB \
             per answer on average",
            w.seconds,
            100.0 * w.server_cpu.as_secs_f64() / w.seconds.max(1e-9),
            fmt_duration(w.server_cpu / u32::try_from(n.max(1)).unwrap_or(u32::MAX)),
            100.0 * w.load_cpu.as_secs_f64() / w.seconds.max(1e-9),
            100.0 * w.machine_busy,
            100.0 * w.machine_iowait,
            bytes as f64 / 1024.0 / n.max(1) as f64
        );
    }
    if !results.probes.is_empty() {
        let failed = results.probes.iter().filter(|(_, s)| *s != 200).count();
        let stats = Stats::of(results.probes.iter().map(|(d, _)| *d).collect());
        println!(
            "/healthz every 500 ms during the pages window (its own connection): {} probes, \
             p50 {} ms, p99 {} ms, max {} ms, {failed} not 200",
            stats.n,
            ms(stats.p50),
            ms(stats.p99),
            ms(stats.max)
        );
    }
    if !results.errors.is_empty() {
        println!();
        println!("answers other than 200 (first few per session):");
        for e in results.errors.iter().take(20) {
            println!("  {e}");
        }
    }
}
