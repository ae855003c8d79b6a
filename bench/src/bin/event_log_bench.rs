//! The event log's durable ingest rate beside a raw batched insert of the same rows into the
//! same kind of SQLite file (the floor, with SQLite's own checkpoints and again with the
//! event log's checkpoint thread), and a person's last 100 events with many stored.
//!
//! cargo run --release -p gatehouse-bench --bin event-log-bench -- --events 200000 --stored 10000000

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use gatehouse::store::checkpoint::WalStats;
use gatehouse::store::event_log::{BatchPolicy, Event, EventFilter, EventLog, recent};
use gatehouse_bench::appliance::recorded_swipe;
use gatehouse_bench::event_rows::{Checkpoints, fresh_database, raw_insert};
use gatehouse_bench::measure::{Stats, fmt_duration, machine};
use rand::{Rng, SeedableRng};

#[derive(Parser)]
struct Args {
    /// Events appended through the event log (and inserted raw, for the floor).
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Events stored before timing a person's last 100 (0 skips that part).
    #[arg(long, default_value_t = 10_000_000)]
    stored: usize,
    /// Appends in flight at once (readers swiping at the same time).
    #[arg(long, default_value_t = 1_000)]
    concurrency: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The writer's largest batch (default: the appliance's).
    #[arg(long)]
    max_batch: Option<usize>,
    /// The batch size from which the writer gathers the next batch (default: the appliance's).
    #[arg(long)]
    under_load: Option<usize>,
    /// The writer's page cache in KiB (default: the appliance's).
    #[arg(long)]
    cache_kib: Option<i64>,
    /// WAL pages awaiting a checkpoint before a passive one runs (default: the appliance's).
    #[arg(long)]
    passive_pages: Option<i64>,
    /// WAL pages at which the log is restarted (default: the appliance's).
    #[arg(long)]
    restart_pages: Option<i64>,
    /// Events per transaction of the floors (default: the most a batch of the event log
    /// can hold in this run, the smaller of its largest batch and the appends in flight).
    #[arg(long)]
    floor_batch: Option<usize>,
    /// Skip the floors (to measure only the event log).
    #[arg(long)]
    no_floor: bool,
}

/// The checkpoint thread's work, in a line.
fn wal_line(stats: &WalStats, events: usize) -> String {
    format!(
        "{} commits (mean {:.0} events), {} passive checkpoints, {} restarts ({} given up, \
         {} put off), largest log {:.0} MiB, writer held for a restart at most {}",
        stats.commits,
        events as f64 / stats.commits.max(1) as f64,
        stats.passive,
        stats.restarts,
        stats.restarts_busy,
        stats.restarts_deferred,
        stats.largest_log_pages as f64 * 4096.0 / 1048576.0,
        fmt_duration(stats.longest_hold)
    )
}

const PEOPLE: i64 = 100_000;

fn event(rng: &mut impl Rng, i: usize, t0: DateTime<Utc>) -> Event {
    let person = rng.random_range(1..=PEOPLE);
    let denied = rng.random_bool(0.1);
    let door = rng.random_range(1..=1000);
    let at = t0 + TimeDelta::milliseconds(i64::try_from(i).unwrap_or(0));
    recorded_swipe(i, at, format!("reader-{}", i % 1000), door, person, denied)
}

fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(args.seed);
    let t0 = DateTime::parse_from_rfc3339("2026-11-24T08:00:00Z")?.with_timezone(&Utc);
    let rows: Vec<Event> = (0..args.events).map(|i| event(&mut rng, i, t0)).collect();
    let mut policy = BatchPolicy::default();
    policy.max_batch = args.max_batch.unwrap_or(policy.max_batch);
    policy.cache_kib = args.cache_kib.unwrap_or(policy.cache_kib);
    policy.under_load = args.under_load.unwrap_or(policy.under_load);
    policy.wal.passive_pages = args.passive_pages.unwrap_or(policy.wal.passive_pages);
    policy.wal.restart_pages = args.restart_pages.unwrap_or(policy.wal.restart_pages);
    println!("machine: {}", machine());
    println!(
        "{} events, {} appends in flight, batches of up to {} (linger {:?}), writer cache {} KiB",
        args.events, args.concurrency, policy.max_batch, policy.linger, policy.cache_kib
    );
    println!(
        "checkpoints: passive past {} pages waiting, restart past {} pages in the log",
        policy.wal.passive_pages, policy.wal.restart_pages
    );

    // The floors first, each on its own file: SQLite's own checkpoints (the floor the
    // targets are measured against), then the event log's checkpoint thread.
    let floor_batch = args
        .floor_batch
        .unwrap_or(policy.max_batch.min(args.concurrency));
    let mut floors = Vec::new();
    if !args.no_floor {
        println!("floors: transactions of {floor_batch} events");
        let floor_db = fresh_database(dir.path(), "floor.db")?;
        let (floor, _) = raw_insert(&floor_db, &rows, floor_batch, Checkpoints::Sqlite)?;
        floors.push(("raw batched insert (floor)", floor, None));
        let floor_db = fresh_database(dir.path(), "floor-ckpt.db")?;
        let thread = Checkpoints::Thread {
            wal: policy.wal,
            cache_kib: policy.cache_kib,
        };
        let (floor, stats) = raw_insert(&floor_db, &rows, floor_batch, thread)?;
        floors.push(("raw, as the event writer", floor, stats));
    }

    // The event log: concurrent appends, each answered once its batch is durable.
    let log_db = fresh_database(dir.path(), "log.db")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (log, writer) = EventLog::new(log_db.clone(), policy);
    runtime.spawn(writer.run());
    let tenth = (args.events / 10).max(1);
    let (elapsed, latencies, marks) = runtime.block_on(async {
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(rows.len());
        // When each tenth of the events was handed over: once the pipe is full, an append
        // goes in when an earlier one is durable, so these give the rate along the run.
        let mut marks = Vec::new();
        for (i, e) in rows.iter().cloned().enumerate() {
            if i % tenth == 0 {
                marks.push(started.elapsed());
            }
            let permit = semaphore
                .clone()
                .acquire_owned()
                .await
                .context("semaphore")?;
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let t = Instant::now();
                let r = log.append(e).await;
                drop(permit);
                r.map(|_| t.elapsed())
            }));
        }
        let mut latencies = Vec::with_capacity(tasks.len());
        for t in tasks {
            latencies.push(t.await??);
        }
        Ok::<_, anyhow::Error>((started.elapsed(), latencies, marks))
    })?;
    let wal = log.wal_stats();
    let wal_file = std::fs::metadata(dir.path().join("log.db-wal")).map_or(0, |m| m.len());
    let rate = args.events as f64 / elapsed.as_secs_f64();
    let append = Stats::of(latencies);
    println!("\ndurable ingest");
    for (name, took, stats) in &floors {
        println!(
            "  {:<28}{:>10.0} events/s  ({})",
            name,
            args.events as f64 / took.as_secs_f64(),
            fmt_duration(*took)
        );
        if let Some(stats) = stats {
            println!("    {}", wal_line(stats, args.events));
        }
    }
    println!(
        "  {:<28}{:>10.0} events/s  ({})",
        "event log",
        rate,
        fmt_duration(elapsed)
    );
    println!("    {}", wal_line(&wal, args.events));
    println!(
        "    WAL file at the end: {:.0} MiB",
        wal_file as f64 / 1048576.0
    );
    let windows: Vec<String> = marks
        .windows(2)
        .map(|w| format!("{:.0}", tenth as f64 / (w[1] - w[0]).as_secs_f64()))
        .collect();
    println!(
        "    events/s along the run (each tenth handed over): {}",
        windows.join(" ")
    );
    println!(
        "  append → durable: p50 {}, p99 {}, max {}",
        fmt_duration(append.p50),
        fmt_duration(append.p99),
        fmt_duration(append.max)
    );
    for (name, took, _) in &floors {
        let floor_rate = args.events as f64 / took.as_secs_f64();
        println!(
            "  ratio to {:<20}{:>8.2}; ≥ 50%: {}",
            name,
            rate / floor_rate,
            if rate >= floor_rate * 0.5 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    println!(
        "  target ≥ 20,000 events/s: {}",
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );

    if args.stored > 0 {
        // Fill the log to `stored` events (raw, fast), then time a person's last 100.
        let started = Instant::now();
        let mut stored = args.events;
        let mut i = args.events;
        while stored < args.stored {
            let n = (args.stored - stored).min(100_000);
            let chunk: Vec<Event> = (0..n).map(|k| event(&mut rng, i + k, t0)).collect();
            raw_insert(&log_db, &chunk, 5_000, Checkpoints::Sqlite)?;
            i += n;
            stored += n;
            eprint!("\r  filling: {stored}/{}", args.stored);
        }
        eprintln!(" ({})", fmt_duration(started.elapsed()));
        let mut conn = log_db.get()?;
        let mut samples = Vec::new();
        for _ in 0..200 {
            let filter = EventFilter {
                person_id: Some(rng.random_range(1..=PEOPLE)),
                ..EventFilter::default()
            };
            let t = Instant::now();
            let found = recent(&mut conn, &filter, 100)?;
            samples.push(t.elapsed());
            std::hint::black_box(found);
        }
        let q = Stats::of(samples);
        println!(
            "\na person's last 100 events with {} stored (200 random people)",
            args.stored
        );
        println!(
            "  p50 {}, p99 {}, max {}; target p99 ≤ 20 ms: {}",
            fmt_duration(q.p50),
            fmt_duration(q.p99),
            fmt_duration(q.max),
            if q.p99 <= Duration::from_millis(20) {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    Ok(())
}
