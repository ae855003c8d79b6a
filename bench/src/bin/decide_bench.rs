//! `decide` on a generated building, beside the same policy in Cedar (two forms) in the
//! same run. See BENCHMARKS.md for what is measured and how.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use gatehouse::policy::Snapshot;
use gatehouse_bench::building::{self, BuildingSpec};
use gatehouse_bench::cedar::{CedarBuilding, Form};
use gatehouse_bench::measure::{self, Stats, fmt_duration, mib, ratio};
use gatehouse_bench::requests::{self, Mix};
use gatehouse_bench::run::{self, Agreement};

#[derive(Debug, Parser)]
#[command(about = "Benchmark of the access decision against Cedar, measured in the same run")]
struct Args {
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// Credentials in total [default: 2 per person].
    #[arg(long)]
    credentials: Option<usize>,
    #[arg(long, default_value_t = 1_000)]
    doors: usize,
    #[arg(long, default_value_t = 50)]
    zones: usize,
    #[arg(long, default_value_t = 1_000)]
    levels: usize,
    #[arg(long, default_value_t = 20)]
    schedules: usize,
    #[arg(long, default_value_t = 2)]
    sites: usize,
    /// Requests in the mix (60% granted, 30% denied, 10% unknown credentials).
    #[arg(long, default_value_t = 100_000)]
    requests: usize,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Snapshot compilations to time (best and median are reported).
    #[arg(long, default_value_t = 7)]
    compile_runs: usize,
    /// Evaluate Cedar's per-level form on only the first N requests (it takes about a
    /// millisecond each) [default: all].
    #[arg(long)]
    per_level_requests: Option<usize>,
    /// Skip Cedar entirely.
    #[arg(long)]
    no_cedar: bool,
}

struct CedarResult {
    form: Form,
    stats: Stats,
    agreement: Agreement,
    errors: usize,
    policies: usize,
    entities: usize,
    build_time: Duration,
    request_time: Duration,
    rss_kib: u64,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("decide-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ok(false) when an engine disagreed with `decide`.
fn run() -> Result<bool> {
    let args = Args::parse();
    let spec = BuildingSpec {
        sites: args.sites,
        zones: args.zones,
        doors: args.doors,
        people: args.people,
        credentials: args.credentials.unwrap_or(2 * args.people),
        schedules: args.schedules,
        levels: args.levels,
        ..BuildingSpec::default()
    };
    let at = spec.reference;
    println!(
        "# decide-bench (seed {}, {}; {}; load average {})",
        args.seed,
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        measure::machine(),
        measure::load_average().unwrap_or_default()
    );

    // The building, and what its input rows take.
    let mem0 = measure::memory().unwrap_or_default();
    let t = Instant::now();
    let data = building::generate(&spec, args.seed);
    let generate_time = t.elapsed();
    let mem1 = measure::memory().unwrap_or_default();

    // Snapshot memory, from VmRSS (see BENCHMARKS.md): growth over a first compilation
    // (the input stays alive; the snapshot copies the rows it keeps), its peak, then the
    // growth from holding a second snapshot beside it, whose temporaries reuse the first
    // compilation's freed memory, so it is close to what one snapshot keeps resident.
    let peak_reset = measure::reset_peak();
    let before = measure::memory().unwrap_or_default();
    let first = Snapshot::compile(&data, at)?;
    let after_first = measure::memory().unwrap_or_default();
    let second = Snapshot::compile(&data, at)?;
    let after_second = measure::memory().unwrap_or_default();
    let counts = first.counts();
    drop((first, second));
    let dropped = measure::memory().unwrap_or_default();

    // Compile time.
    let mut compiles = Vec::with_capacity(args.compile_runs.max(1));
    let mut snap = None;
    for _ in 0..args.compile_runs.max(1) {
        drop(snap.take());
        let t = Instant::now();
        let s = Snapshot::compile(&data, at)?;
        compiles.push(t.elapsed());
        snap = Some(s);
    }
    let Some(snap) = snap else {
        anyhow::bail!("no snapshot compiled");
    };
    let compile = Stats::of(compiles);

    // Requests.
    let t = Instant::now();
    let workload = requests::generate(&data, &snap, at, args.requests, Mix::default(), args.seed);
    let workload_time = t.elapsed();
    let reqs = &workload.requests;

    // decide: a warm-up pass, a pass timing each call, a batch pass.
    let overhead = measure::timer_overhead(100_000);
    let _ = run::decide_timed(&snap, reqs, at);
    let decided = run::decide_timed(&snap, reqs, at);
    let batch = run::decide_batch(&snap, reqs, at);
    let decide_granted = decided.granted.iter().filter(|g| **g).count();

    // Both entity stores are built first and kept, so each one's RSS growth is its own
    // (memory freed by one would otherwise be reused by the next).
    let mut built = Vec::new();
    if !args.no_cedar {
        for form in [Form::Attributes, Form::PerLevel] {
            let m0 = measure::memory().unwrap_or_default();
            let t = Instant::now();
            let building = CedarBuilding::build(&data, form, at)?;
            let build_time = t.elapsed();
            let m1 = measure::memory().unwrap_or_default();
            built.push((building, build_time, m1.rss_kib.saturating_sub(m0.rss_kib)));
        }
    }
    let mut cedar = Vec::new();
    for (building, build_time, rss_kib) in built {
        let form = building.form;
        {
            let n = match form {
                Form::PerLevel => args
                    .per_level_requests
                    .unwrap_or(reqs.len())
                    .min(reqs.len()),
                Form::Attributes => reqs.len(),
            };
            let prepared =
                run::prepare_requests(building, build_time, &data, &snap, &reqs[..n], at)?;
            let warm = match form {
                Form::PerLevel => n.min(2_000),
                Form::Attributes => n,
            };
            let _ = run::cedar_timed(&prepared, 0..warm);
            let pass = run::cedar_timed(&prepared, 0..n);
            cedar.push(CedarResult {
                form,
                stats: pass.stats,
                agreement: Agreement::of(&decided.granted[..n], &pass.allowed),
                errors: pass.errors,
                policies: prepared.building.policy_count,
                entities: prepared.building.entity_count,
                build_time: prepared.build_time,
                request_time: prepared.request_time,
                rss_kib,
            });
        }
    }

    // Report.
    println!();
    println!("## Building");
    println!(
        "{} sites, {} zones, {} doors, {} readers, {} people, {} credentials, {} schedules, \
         {} holidays, {} levels, {} entitlements; {} (door, level) pairs, {} timelines",
        counts.sites,
        counts.zones,
        counts.doors,
        counts.readers,
        counts.people,
        counts.credentials,
        counts.schedules,
        counts.holidays,
        counts.levels,
        counts.entitlements,
        counts.door_level_pairs,
        counts.timelines
    );
    println!("generated in {}", fmt_duration(generate_time));
    println!();
    println!("## Snapshot");
    println!(
        "compile: best {}, median {}, max {} over {} runs",
        fmt_duration(compile.min),
        fmt_duration(compile.p50),
        fmt_duration(compile.max),
        compile.n
    );
    println!(
        "memory (VmRSS): input PolicyData {:.1} MiB; first compile +{:.1} MiB resident after, \
         peak +{:.1} MiB during{}; a second snapshot held beside it +{:.1} MiB; \
         {:.1} MiB returned to the OS when both were dropped",
        mib(mem1.rss_kib.saturating_sub(mem0.rss_kib)),
        mib(after_first.rss_kib.saturating_sub(before.rss_kib)),
        mib(after_first.hwm_kib.saturating_sub(before.rss_kib)),
        if peak_reset {
            ""
        } else {
            " (VmHWM not reset: peak is the process's)"
        },
        mib(after_second.rss_kib.saturating_sub(after_first.rss_kib)),
        mib(after_second.rss_kib.saturating_sub(dropped.rss_kib)),
    );
    println!();
    println!("## Requests");
    println!(
        "{} requests at {} ({}): {} granted, {} denied, {} unknown credentials{}",
        reqs.len(),
        at.format("%Y-%m-%d %H:%M UTC"),
        fmt_duration(workload_time),
        workload.granted,
        workload.denied,
        workload.unknown,
        if workload.complete {
            ""
        } else {
            " (mix incomplete: building too small)"
        }
    );
    let outcomes: Vec<String> = workload
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("outcomes: {}", outcomes.join(", "));
    println!(
        "timer overhead (Instant::now + elapsed, empty): min {}, p50 {}, p99 {}",
        fmt_duration(overhead.min),
        fmt_duration(overhead.p50),
        fmt_duration(overhead.p99)
    );
    println!();
    println!("## Per-request time (each call timed on its own, timer overhead included)");
    println!("| engine | requests | p50 | p99 | max | mean | agrees with decide | Cedar errors |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| gatehouse decide | {} | {} | {} | {} | {} (batch: {}) | {} granted | {} |",
        decided.stats.n,
        fmt_duration(decided.stats.p50),
        fmt_duration(decided.stats.p99),
        fmt_duration(decided.stats.max),
        fmt_duration(decided.stats.mean),
        fmt_duration(batch / reqs.len().max(1) as u32),
        decide_granted,
        decided.errors
    );
    for c in &cedar {
        println!(
            "| cedar {} form | {} | {} | {} | {} | {} | {}/{} | {} |",
            c.form.name(),
            c.stats.n,
            fmt_duration(c.stats.p50),
            fmt_duration(c.stats.p99),
            fmt_duration(c.stats.max),
            fmt_duration(c.stats.mean),
            c.agreement.agree,
            c.agreement.compared,
            c.errors
        );
    }
    println!();
    for c in &cedar {
        println!(
            "cedar {} form: {} policies, {} entities; policies + entities built in {} (store +{:.1} MiB RSS); \
             {} requests prepared in {}",
            c.form.name(),
            c.policies,
            c.entities,
            fmt_duration(c.build_time),
            mib(c.rss_kib),
            c.stats.n,
            fmt_duration(c.request_time)
        );
    }
    println!();
    println!("## Ratios (Cedar ÷ decide)");
    for c in &cedar {
        println!(
            "cedar {} form: p50 {:.1}x, p99 {:.1}x, mean {:.1}x",
            c.form.name(),
            ratio(c.stats.p50, decided.stats.p50),
            ratio(c.stats.p99, decided.stats.p99),
            ratio(c.stats.mean, decided.stats.mean)
        );
    }
    println!();
    println!("## Targets");
    let mark = |ok: bool| if ok { "met" } else { "NOT MET" };
    let p99_ok = decided.stats.p99 <= Duration::from_micros(5);
    println!(
        "decide p99 <= 5 µs: {} ({})",
        mark(p99_ok),
        fmt_duration(decided.stats.p99)
    );
    for c in &cedar {
        let (r50, r99) = (
            ratio(c.stats.p50, decided.stats.p50),
            ratio(c.stats.p99, decided.stats.p99),
        );
        match c.form {
            Form::PerLevel => println!(
                ">= 10x faster than Cedar per-level form (p50 and p99): {} ({r50:.0}x, {r99:.0}x)",
                mark(r50 >= 10.0 && r99 >= 10.0)
            ),
            Form::Attributes => println!(
                "faster than Cedar attribute form (p50 and p99): {} ({r50:.1}x, {r99:.1}x)",
                mark(r50 > 1.0 && r99 > 1.0)
            ),
        }
    }
    println!(
        "snapshot rebuilt in <= 1 s (median): {} ({})",
        mark(compile.p50 <= Duration::from_secs(1)),
        fmt_duration(compile.p50)
    );

    println!();
    println!(
        "load average at the end: {}",
        measure::load_average().unwrap_or_default()
    );

    let mut all_agree = true;
    for c in &cedar {
        if !c.agreement.all() {
            all_agree = false;
            eprintln!(
                "DISAGREEMENT: cedar {} form differs from decide on {} of {} requests; first: {:?}",
                c.form.name(),
                c.agreement.compared - c.agreement.agree,
                c.agreement.compared,
                c.agreement
                    .first_disagreements
                    .iter()
                    .map(|&i| (
                        &reqs[i].reader_id,
                        reqs[i].key.to_string(),
                        decided.granted[i]
                    ))
                    .collect::<Vec<_>>()
            );
        }
    }
    Ok(all_agree)
}
