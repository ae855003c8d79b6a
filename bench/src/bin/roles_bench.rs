//! Role mining on the nine HP Labs matrices: the role count of the exact cover beside the
//! known optimum (the reference), the ratio, the time, and an independent check that the
//! cover is exact. See BENCHMARKS.md.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use gatehouse::risk::roles::{self, Matrix, Mode, Tolerance};
use gatehouse_bench::measure::{self, Stats, fmt_duration};

/// The matrices and the fewest roles that cover each exactly, as listed in the shared
/// data set's README (Ene et al., SACMAT 2008).
const MATRICES: [(&str, usize); 9] = [
    ("hc", 14),
    ("domino", 20),
    ("emea", 34),
    ("fire1", 66),
    ("fire2", 10),
    ("apj", 453),
    ("americas_small", 178),
    ("americas_large", 398),
    ("customer", 276),
];

/// The targets: at most this many times the optimum, in at most this time.
const TARGET_RATIO: f64 = 1.05;
const TARGET_TIME: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(about = "Role mining on the HP matrices against their known optima")]
struct Args {
    /// The folder of the HP matrices [default: the first `shared/data/rolemining-hp` found
    /// in this folder or one above it].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Only these matrices (comma-separated names, e.g. hc,domino).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Timed runs per matrix (best and median are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also mine each matrix with this tolerance and report its role count and coverage.
    #[arg(long)]
    tolerance: Option<Tolerance>,
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("roles-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn find_data() -> Result<PathBuf> {
    let start = std::env::current_dir()?;
    for dir in start
        .ancestors()
        .chain(Path::new(env!("CARGO_MANIFEST_DIR")).ancestors())
    {
        let candidate = dir.join("shared/data/rolemining-hp");
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    bail!(
        "no shared/data/rolemining-hp folder found above {}; pass --data",
        start.display()
    )
}

/// Ok(false) when a cover was not exact or missed a target.
fn run() -> Result<bool> {
    let args = Args::parse();
    let data = match args.data {
        Some(d) => d,
        None => find_data()?,
    };
    for name in &args.only {
        if !MATRICES.iter().any(|(m, _)| m == name) {
            bail!(
                "no matrix named {name}; the nine are {}",
                MATRICES.map(|m| m.0).join(", ")
            );
        }
    }
    println!(
        "# roles-bench ({}; {}; load average {}; {} runs each; data {})",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        measure::machine(),
        measure::load_average().unwrap_or_default(),
        args.runs.max(1),
        data.display()
    );
    println!(
        "{:<15} {:>6} {:>6} {:>7} {:>8} {:>7} {:>6} {:>6} {:>10} {:>10} {:>10}  target",
        "matrix",
        "people",
        "perms",
        "assign",
        "distinct",
        "optimum",
        "roles",
        "ratio",
        "exact",
        "best",
        "median"
    );
    let mut all_good = true;
    for (name, optimum) in MATRICES {
        if !args.only.is_empty() && !args.only.iter().any(|o| o == name) {
            continue;
        }
        let path = data.join(format!("{name}.txt"));
        let text =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let matrix = Matrix::parse(&text).with_context(|| path.display().to_string())?;
        let mut times = Vec::new();
        let mut result = None;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let set = roles::mine(&matrix, Mode::Exact, &mut |_| {});
            times.push(t.elapsed());
            result = Some(set);
        }
        let Some(set) = result else { bail!("no run") };
        let stats = Stats::of(times);
        // Checked here from the roles alone, not taken from the miner's own claim.
        let check = roles::verify(&matrix, &set.roles);
        let ratio = set.roles.len() as f64 / optimum as f64;
        let good = check.exact() && ratio <= TARGET_RATIO && stats.p50 <= TARGET_TIME;
        all_good &= good;
        println!(
            "{:<15} {:>6} {:>6} {:>7} {:>8} {:>7} {:>6} {:>6.3} {:>10} {:>10} {:>10}  {}",
            name,
            matrix.people().len(),
            matrix.permissions().len(),
            matrix.assignments(),
            distinct_rows(&matrix),
            optimum,
            set.roles.len(),
            ratio,
            if check.exact() { "yes" } else { "NO" },
            fmt_duration(stats.min),
            fmt_duration(stats.p50),
            if good { "met" } else { "MISSED" },
        );
        if !check.exact() {
            println!(
                "  {name}: {} assignments not covered, {} over-granted",
                check.uncovered, check.over_granted
            );
        }
        if let Some(tolerance) = args.tolerance {
            let t = Instant::now();
            let loose = roles::mine(&matrix, Mode::Tolerant(tolerance), &mut |_| {});
            let took = t.elapsed();
            let check = roles::verify(&matrix, &loose.roles);
            println!(
                "  with tolerance {}: {} roles, coverage {:.2}%, {} exceptions, {} over-granted, {}",
                tolerance.share(),
                loose.roles.len(),
                loose.coverage() * 100.0,
                check.uncovered,
                check.over_granted,
                fmt_duration(took)
            );
        }
    }
    Ok(all_good)
}

/// Distinct permission sets among the people: the levels an exact cover needs with no
/// mining at all (one level per distinct set), for scale.
fn distinct_rows(matrix: &Matrix) -> usize {
    let mut rows: Vec<&[u32]> = (0..matrix.people().len() as u32)
        .map(|u| matrix.row(u))
        .filter(|r| !r.is_empty())
        .collect();
    rows.sort_unstable();
    rows.dedup();
    rows.len()
}
