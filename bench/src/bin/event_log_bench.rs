//! The event log's durable ingest rate beside a raw batched insert of the same rows into the
//! same kind of SQLite file (the floor), and a person's last 100 events with many stored.
//!
//! cargo run --release -p gatehouse-bench --bin event-log-bench -- --events 200000 --stored 10000000

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use gatehouse::event_log::{BatchPolicy, EventFilter, EventLog, NewEvent, recent};
use gatehouse_bench::appliance::recorded_swipe;
use gatehouse_bench::event_rows::{fresh_database, raw_insert};
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
}

const PEOPLE: i64 = 100_000;

fn event(rng: &mut impl Rng, i: usize, t0: DateTime<Utc>) -> NewEvent {
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
    let rows: Vec<NewEvent> = (0..args.events).map(|i| event(&mut rng, i, t0)).collect();
    let policy = BatchPolicy::default();
    println!("machine: {}", machine());
    println!(
        "{} events, {} appends in flight, batches of up to {} (linger {:?})",
        args.events, args.concurrency, policy.max_batch, policy.linger
    );

    // The floor first, on its own file.
    let floor_db = fresh_database(dir.path(), "floor.db")?;
    let floor = raw_insert(&floor_db, &rows, policy.max_batch)?;
    let floor_rate = args.events as f64 / floor.as_secs_f64();

    // The event log: concurrent appends, each answered once its batch is durable.
    let log_db = fresh_database(dir.path(), "log.db")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (log, writer) = EventLog::new(log_db.clone(), policy);
    runtime.spawn(writer.run());
    let (elapsed, latencies) = runtime.block_on(async {
        let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(args.concurrency));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(rows.len());
        for e in rows.iter().cloned() {
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
        Ok::<_, anyhow::Error>((started.elapsed(), latencies))
    })?;
    let rate = args.events as f64 / elapsed.as_secs_f64();
    let append = Stats::of(latencies);
    println!("\ndurable ingest");
    println!(
        "  raw batched insert (floor)  {:>10.0} events/s  ({})",
        floor_rate,
        fmt_duration(floor)
    );
    println!(
        "  event log                   {:>10.0} events/s  ({})",
        rate,
        fmt_duration(elapsed)
    );
    println!("  ratio to the floor          {:>10.2}", rate / floor_rate);
    println!(
        "  append → durable: p50 {}, p99 {}, max {}",
        fmt_duration(append.p50),
        fmt_duration(append.p99),
        fmt_duration(append.max)
    );
    println!(
        "  targets: ≥ 50% of the floor: {}; ≥ 20,000 events/s: {}",
        if rate >= floor_rate * 0.5 {
            "met"
        } else {
            "NOT met"
        },
        if rate >= 20_000.0 { "met" } else { "NOT met" }
    );

    if args.stored > 0 {
        // Fill the log to `stored` events (raw, fast), then time a person's last 100.
        let started = Instant::now();
        let mut stored = args.events;
        let mut i = args.events;
        while stored < args.stored {
            let n = (args.stored - stored).min(100_000);
            let chunk: Vec<NewEvent> = (0..n).map(|k| event(&mut rng, i + k, t0)).collect();
            raw_insert(&log_db, &chunk, 5_000)?;
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
