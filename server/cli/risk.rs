//! `gatehouse risk ...`: the risk engine's analyses for admins and scripts. Each
//! subcommand prints a table for people (`--format table`) or JSON lines for scripts.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use crate::app::database::open_database;
use crate::config::Config;
use crate::risk::roles::{self, Matrix, Mode, Progress, RoleSet, Tolerance};

#[derive(Debug, Subcommand)]
pub enum RiskCommand {
    /// Entitlement findings: unused, peer outliers, redundant, dormant cards, over-broad
    /// levels, toxic combinations ([entitlement_review] in the config), highest score first.
    Entitlements {
        /// table (for people) or jsonl (one finding per line, for scripts).
        #[arg(long, value_enum, default_value = "table")]
        format: OutputFormat,
        /// Leave out findings scoring below this (0 to 100).
        #[arg(long, default_value_t = 0.0)]
        min_score: f64,
    },
    /// Propose access levels (roles) from a person × door matrix: exactly (each person's
    /// doors are the union of their roles, with as few roles as possible) or, with
    /// --tolerance, fewer roles and a stated share of individual exceptions.
    Roles(RolesArgs),
}

/// How a risk subcommand prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// A summary for people.
    Table,
    /// One JSON object per line: a summary first, then one line per finding.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    /// The matrix: one `person permission` line per assignment, two positive numbers (the
    /// HP role-mining benchmark's format); `#` starts a comment line.
    #[arg(long, value_name = "FILE")]
    pub matrix: PathBuf,
    /// Allow up to this share of the assignments (0 to below 1, e.g. 0.05) to stay
    /// individual exceptions, for fewer roles. Without it the cover is exact.
    #[arg(long, value_name = "SHARE")]
    pub tolerance: Option<Tolerance>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

pub fn run(config: &Config, command: RiskCommand) -> Result<ExitCode> {
    match command {
        RiskCommand::Entitlements { format, min_score } => {
            entitlements_command(config, format, min_score)
        }
        RiskCommand::Roles(args) => roles_command(args),
    }
}

fn entitlements_command(config: &Config, format: OutputFormat, min_score: f64) -> Result<ExitCode> {
    use crate::risk::entitlements::{Settings, review};
    let pool = open_database(config)?;
    let mut conn = pool.get()?;
    let settings = Settings::from_config(&config.entitlement_review);
    // The appliance's own operator: reads as an admin may.
    let scope = crate::store::history::ReadScope::of(crate::identity::admins::Role::Admin);
    let found = review(&mut conn, scope, &settings, chrono::Utc::now())
        .context("cannot read the entitlements and their use")?;
    for note in &found.notes {
        eprintln!("note: {note}");
    }
    let shown = found.findings.iter().filter(|f| f.score >= min_score);
    let mut out = std::io::stdout().lock();
    match format {
        OutputFormat::Jsonl => {
            for finding in shown {
                writeln!(out, "{}", serde_json::to_string(finding)?)?;
            }
        }
        OutputFormat::Table => {
            writeln!(
                out,
                "{:<19} {:>5}  {:<28} {:<24} suggestion",
                "finding", "score", "person", "level or card"
            )?;
            let mut n = 0usize;
            for finding in shown {
                writeln!(out, "{finding}")?;
                n += 1;
            }
            writeln!(
                out,
                "{n} findings; unused means no use in {} days",
                settings.unused_days
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn roles_command(args: RolesArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let text = std::fs::read(&args.matrix)
        .with_context(|| format!("cannot read {}", args.matrix.display()))?;
    let matrix = Matrix::parse(&text).with_context(|| {
        format!(
            "{} is not a role-mining matrix (one `person permission` line per assignment)",
            args.matrix.display()
        )
    })?;
    let read = started.elapsed();
    let mode = match args.tolerance {
        Some(tolerance) => Mode::Tolerant(tolerance),
        None => Mode::Exact,
    };
    let mut display = ProgressLine::new();
    let mining = Instant::now();
    let set = roles::mine(&matrix, mode, &mut |p| display.show(p));
    let mined = mining.elapsed();
    display.finish();

    let mut out = std::io::stdout().lock();
    match args.format {
        OutputFormat::Table => print_table(&mut out, &matrix, &set, read, mined)?,
        OutputFormat::Jsonl => print_jsonl(&mut out, &matrix, &set, read + mined)?,
    }
    out.flush()?;
    // An exact cover was asked for and could not be verified: say so in the exit code.
    if mode == Mode::Exact && !set.exact {
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn mode_text(mode: Mode) -> String {
    match mode {
        Mode::Exact => "exact".into(),
        Mode::Tolerant(t) => format!("tolerant (up to {:.2}% exceptions)", t.share() * 100.0),
    }
}

fn print_table(
    out: &mut impl Write,
    matrix: &Matrix,
    set: &RoleSet,
    read: Duration,
    mined: Duration,
) -> Result<()> {
    writeln!(
        out,
        "matrix:       {} people, {} permissions, {} assignments",
        matrix.people().len(),
        matrix.permissions().len(),
        matrix.assignments()
    )?;
    writeln!(out, "mode:         {}", mode_text(set.mode))?;
    writeln!(out, "roles:        {}", set.roles.len())?;
    writeln!(
        out,
        "exact cover:  {}",
        if set.exact {
            "yes (every person's permissions are exactly the union of their roles)"
        } else {
            "no"
        }
    )?;
    writeln!(
        out,
        "coverage:     {:.2}% ({} of {} assignments by roles; {} exceptions, no over-grants)",
        set.coverage() * 100.0,
        set.covered,
        set.assignments,
        set.exceptions.len()
    )?;
    writeln!(
        out,
        "time:         {:.3} s (reading {:.3} s, mining {:.3} s)",
        (read + mined).as_secs_f64(),
        read.as_secs_f64(),
        mined.as_secs_f64()
    )?;
    if !set.roles.is_empty() {
        writeln!(
            out,
            "largest role: {} permissions × {} people; --format jsonl lists every role",
            set.roles[0].permissions.len(),
            set.roles[0].people.len()
        )?;
    }
    Ok(())
}

fn print_jsonl(out: &mut impl Write, matrix: &Matrix, set: &RoleSet, took: Duration) -> Result<()> {
    let tolerance = match set.mode {
        Mode::Exact => None,
        Mode::Tolerant(t) => Some(t.share()),
    };
    let summary = json!({
        "kind": "summary",
        "people": matrix.people().len(),
        "permissions": matrix.permissions().len(),
        "assignments": set.assignments,
        "mode": match set.mode { Mode::Exact => "exact", Mode::Tolerant(_) => "tolerant" },
        "tolerance": tolerance,
        "roles": set.roles.len(),
        "exact": set.exact,
        "covered": set.covered,
        "coverage": set.coverage(),
        "exceptions": set.exceptions.len(),
        "seconds": took.as_secs_f64(),
    });
    writeln!(out, "{summary}")?;
    let people = matrix.people();
    let permissions = matrix.permissions();
    for (i, role) in set.roles.iter().enumerate() {
        let line = json!({
            "kind": "role",
            "role": i + 1,
            "permissions": role.permissions.iter().map(|&p| &permissions[p as usize]).collect::<Vec<_>>(),
            "people": role.people.iter().map(|&u| &people[u as usize]).collect::<Vec<_>>(),
            "assignments": role.assignments(),
            "coverage": if set.assignments == 0 { 0.0 } else { role.assignments() as f64 / set.assignments as f64 },
        });
        writeln!(out, "{line}")?;
    }
    for &(person, permission) in &set.exceptions {
        let line = json!({
            "kind": "exception",
            "person": &people[person as usize],
            "permission": &permissions[permission as usize],
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// One line on standard error that follows long work, only when it is a terminal.
struct ProgressLine {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl ProgressLine {
    fn new() -> ProgressLine {
        ProgressLine {
            enabled: std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    fn show(&mut self, progress: Progress) {
        if !self.enabled
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        eprint!("\r\x1b[2K  role mining: {progress}");
    }

    fn finish(&mut self) {
        if self.shown {
            eprint!("\r\x1b[2K");
        }
    }
}
