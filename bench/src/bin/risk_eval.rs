//! The risk scorer on a generated scenario (months of routine swipes with labelled
//! incidents), beside an Isolation Forest on the same features in the same run: precision
//! at an alert budget, recall per incident type, false alerts per 1,000 people per day,
//! scoring time per swipe and training time. See BENCHMARKS.md.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Parser;
use gatehouse::risk::Baselines;
use gatehouse::risk::evaluation::{AtBudget, measure, measure_threshold};
use gatehouse::risk::recent::Recent;
use gatehouse::risk::scenario::{IncidentKind, Routine, Scenario, ScenarioSpec};
use gatehouse::risk::score::{features, score};
use gatehouse_bench::isolation_forest::IsolationForest;
use gatehouse_bench::measure::{self, Stats, fmt_duration, mib};

#[derive(Debug, Parser)]
#[command(about = "Risk scoring on a labelled scenario beside an Isolation Forest, in one run")]
struct Args {
    #[arg(long, default_value_t = 2_000)]
    people: usize,
    #[arg(long, default_value_t = 60)]
    training_days: u32,
    #[arg(long, default_value_t = 30)]
    evaluation_days: u32,
    #[arg(long, default_value_t = 20)]
    incidents_per_kind: usize,
    #[arg(long, default_value_t = 12)]
    seed: u64,
    #[arg(long, default_value_t = 100)]
    trees: usize,
    #[arg(long, default_value_t = 256)]
    sample: usize,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("risk-eval: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    println!("machine: {}", measure::machine());
    if let Some(load) = measure::load_average() {
        println!("load average before: {load}");
    }
    let spec = ScenarioSpec {
        seed: args.seed,
        people: args.people,
        training_days: args.training_days,
        evaluation_days: args.evaluation_days,
        incidents_per_kind: args.incidents_per_kind,
    };
    let started = Instant::now();
    let s = Scenario::generate(&spec);
    let (training, evaluation) = (s.training(), s.evaluation());
    let incident_swipes = evaluation.iter().filter(|e| e.incident.is_some()).count();
    println!(
        "scenario: seed {}, {} people, {} + {} days: {} training swipes, {} evaluation swipes of which {} ({:.2}%) in {} incidents; generated in {}",
        args.seed,
        s.people.len(),
        args.training_days,
        args.evaluation_days,
        training.len(),
        evaluation.len(),
        incident_swipes,
        100.0 * incident_swipes as f64 / evaluation.len().max(1) as f64,
        args.incidents_per_kind * IncidentKind::ALL.len(),
        fmt_duration(started.elapsed())
    );

    // Training: the history replayed into fresh baselines.
    measure::reset_peak();
    let before = measure::memory().unwrap_or_default();
    let started = Instant::now();
    let mut baselines = Baselines::default();
    let mut recent = Recent::default();
    for e in training {
        baselines.observe(&s.context, &e.observation);
    }
    let training_time = started.elapsed();
    for e in training {
        recent.record(&s.context, &e.observation);
    }
    let after = measure::memory().unwrap_or_default();
    println!(
        "training: {} swipes in {} ({:.0} swipes/s); baselines about {:.1} MiB (resident {:.1} → {:.1} MiB)",
        training.len(),
        fmt_duration(training_time),
        training.len() as f64 / training_time.as_secs_f64().max(1e-9),
        baselines.approximate_bytes() as f64 / 1_048_576.0,
        mib(before.rss_kib),
        mib(after.rss_kib)
    );

    // Scoring: each evaluation swipe scored, then taken into the baselines and the
    // short-term state, as the appliance does.
    let mut evidence = Vec::with_capacity(evaluation.len());
    let mut values = Vec::with_capacity(evaluation.len());
    let mut vectors = Vec::with_capacity(evaluation.len());
    let mut times = Vec::with_capacity(evaluation.len());
    let mut update_time = Duration::ZERO;
    for e in evaluation {
        let o = &e.observation;
        let t = Instant::now();
        let scored = score(&baselines, &s.context, &recent, o);
        times.push(t.elapsed());
        vectors.push(features(&baselines, &s.context, &recent, o).evidence);
        let t = Instant::now();
        baselines.observe(&s.context, o);
        recent.record(&s.context, o);
        update_time += t.elapsed();
        evidence.push(scored.evidence);
        values.push(scored.value);
    }
    let scoring = Stats::of(times);
    let overhead = measure::timer_overhead(100_000);

    // The reference: an Isolation Forest fitted on the same feature vectors.
    let started = Instant::now();
    let forest = IsolationForest::fit(&vectors, args.trees, args.sample, args.seed);
    let fit_time = started.elapsed();
    let mut forest_rank = Vec::with_capacity(vectors.len());
    let mut forest_times = Vec::with_capacity(vectors.len());
    for v in &vectors {
        let t = Instant::now();
        forest_rank.push(forest.score(v) as f32);
        forest_times.push(t.elapsed());
    }
    let forest_scoring = Stats::of(forest_times);

    println!();
    println!(
        "scoring per swipe (timer overhead p50 {}, not subtracted):",
        fmt_duration(overhead.p50)
    );
    println!(
        "  gatehouse score:   p50 {}  p99 {}  max {}  mean {} ({:.0} swipes/s on one core); online update mean {}",
        fmt_duration(scoring.p50),
        fmt_duration(scoring.p99),
        fmt_duration(scoring.max),
        fmt_duration(scoring.mean),
        1.0 / scoring.mean.as_secs_f64().max(1e-12),
        fmt_duration(update_time / evaluation.len().max(1) as u32)
    );
    println!(
        "  isolation forest:  p50 {}  p99 {}  max {}  mean {} ({} trees, sample {}, fitted in {})",
        fmt_duration(forest_scoring.p50),
        fmt_duration(forest_scoring.p99),
        fmt_duration(forest_scoring.max),
        fmt_duration(forest_scoring.mean),
        args.trees,
        args.sample,
        fmt_duration(fit_time)
    );
    println!();
    let ours = [measure(&s, &evidence, 0.001), measure(&s, &evidence, 0.01)];
    let theirs = [
        measure(&s, &forest_rank, 0.001),
        measure(&s, &forest_rank, 0.01),
    ];
    println!(
        "| budget | alerts | gatehouse precision | isolation forest precision | ratio | gatehouse false alerts /1,000 people/day | forest false alerts /1,000 people/day |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (a, b) in ours.iter().zip(&theirs) {
        println!(
            "| top {}% | {} | {:.3} | {:.3} | {:.2}x | {:.2} | {:.2} |",
            a.budget * 100.0,
            a.alerts,
            a.precision,
            b.precision,
            a.precision / b.precision.max(1e-9),
            a.false_alerts_per_1000_people_day,
            b.false_alerts_per_1000_people_day
        );
    }
    println!();
    println!("recall per incident type (incidents with a swipe among the alerts):");
    println!(
        "| incident | gatehouse top 0.1% | gatehouse top 1% | forest top 0.1% | forest top 1% |"
    );
    println!("|---|---|---|---|---|");
    for kind in IncidentKind::ALL {
        let cell = |m: &AtBudget| {
            let (caught, total) = m.recall.get(&kind).copied().unwrap_or((0, 0));
            format!("{caught}/{total}")
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            kind.as_str(),
            cell(&ours[0]),
            cell(&ours[1]),
            cell(&theirs[0]),
            cell(&theirs[1])
        );
    }
    let alerts = measure_threshold(&s, &values, 50);
    println!();
    println!(
        "alerting at score >= 50: {} alerts ({:.3}% of swipes), precision {:.3}, {:.2} false alerts per 1,000 people per day",
        alerts.alerts,
        alerts.budget * 100.0,
        alerts.precision,
        alerts.false_alerts_per_1000_people_day
    );
    println!("routine swipes scoring >= 50, per routine (fairness):");
    for routine in [
        Routine::Day,
        Routine::PartTime,
        Routine::NightShift,
        Routine::Guard,
        Routine::Traveller,
    ] {
        let (flagged, total) =
            gatehouse::risk::evaluation::routine_alert_share(&s, &values, routine, 50);
        println!(
            "  {routine:?}: {flagged} of {total} ({:.3} per 1,000)",
            flagged as f64 * 1000.0 / total.max(1) as f64
        );
    }
    if let Some(load) = measure::load_average() {
        println!("load average after: {load}");
    }
    Ok(())
}
