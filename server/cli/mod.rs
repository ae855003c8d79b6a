//! The command line: one binary with subcommands for installers and operators. Startup and
//! CLI errors are `anyhow` errors with context that says what to do.

pub mod risk;
pub mod simulate;

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};

use crate::app::database::open_database;
use crate::app::live::LivePolicy;
use crate::clock::Clock;
use crate::config::{self, Config};
use crate::entities::ChangeContext;
use crate::identity::admins;
use crate::identity::provenance::Provenance;
use crate::policy::CredentialKey;
use crate::store::audit;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "On-prem physical access control appliance"
)]
pub struct Cli {
    /// Config file (TOML). Default: $GATEHOUSE_CONFIG, else /etc/gatehouse/gatehouse.toml
    /// if it exists, else built-in defaults. GATEHOUSE_* variables override any setting.
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the appliance: migrate the database, load the policy, serve the API.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Validate the configuration (file and GATEHOUSE_* overrides) without starting.
    CheckConfig,
    /// Import a site file (TOML), people from an HR export with --people FILE.csv, or
    /// event history from a previous access system with --events FILE.csv.
    Import(ImportArgs),
    /// Write the whole site (policy, readers with secrets, people, credentials) as TOML.
    Export {
        /// Write here instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Explain whether a person or card may open a door at a time, and why.
    Explain(ExplainArgs),
    /// Virtual readers (MQTT, Modbus) swiping the site's cards against a running appliance,
    /// or one card at one reader (--reader R --card UID).
    Simulate(SimulateArgs),
    /// Manage admin users and API tokens.
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Inspect the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The risk engine's analyses: entitlement findings and role mining.
    #[command(subcommand)]
    Risk(risk::RiskCommand),
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The site file to import (see docs/site-file.md).
    #[arg(required_unless_present_any = ["people", "events"])]
    pub file: Option<PathBuf>,
    /// A CSV of people (employee_id,name,department,title,manager_employee_id,person_type,status,valid_from,valid_until).
    #[arg(long, conflicts_with = "file")]
    pub people: Option<PathBuf>,
    /// A CSV of swipes from a previous access system (at,employee_id or card_uid,door,result,reason,direction):
    /// added to the event log marked as imported; rows already imported are skipped.
    #[arg(long, conflicts_with_all = ["file", "people"])]
    pub events: Option<PathBuf>,
    /// Validate only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The person's employee id.
    #[arg(long, group = "subject")]
    pub person: Option<String>,
    /// A card's number as the console shows it: its UID in hex (04A1B2C3), or a Wiegand
    /// card as FACILITY:NUMBER (12:34567).
    #[arg(long, group = "subject")]
    pub card: Option<String>,
    /// A Wiegand credential as FACILITY:NUMBER.
    #[arg(long, group = "subject")]
    pub wiegand: Option<String>,
    /// The door's name.
    #[arg(long)]
    pub door: String,
    /// When: a time on the clock of the door's site ("2026-12-25 10:00"), or with its
    /// offset (RFC 3339, 2026-12-25T10:00:00+01:00). Default: now.
    #[arg(long)]
    pub at: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `explain` exits with: the answer, so that scripts can ask (an error is 2, as for
/// every command).
pub const EXPLAIN_GRANTED: u8 = 0;
pub const EXPLAIN_DENIED: u8 = 1;

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// How many of the site's readers to play.
    #[arg(long, default_value_t = 10)]
    pub readers: usize,
    /// Which readers: all, mqtt, or modbus (simulated devices listen on the addresses the
    /// readers are registered with, so those must be addresses of this machine).
    #[arg(long, value_enum, default_value = "all")]
    pub protocol: crate::cli::simulate::Protocols,
    /// How many swipes in all.
    #[arg(long, default_value_t = 200)]
    pub swipes: usize,
    /// Swipes per second across all readers.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// The broker, mqtt://HOST:PORT or mqtts://HOST:PORT (default: the appliance's own,
    /// from the config).
    #[arg(long)]
    pub broker: Option<String>,
    /// The CA certificate (PEM) to trust for a broker over TLS.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Add the v1 mac to the events of legacy readers (readers that must sign always do;
    /// every other reader seals its events).
    #[arg(long)]
    pub sign: bool,
    /// Seed of the random choices, for repeatable runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Present this card (its UID in hex) once at --reader and print the reader's answer;
    /// --readers, --protocol, --swipes and --rate are then ignored.
    #[arg(long, requires = "reader")]
    pub card: Option<String>,
    /// The reader id at which --card is presented (MQTT or Modbus, as registered).
    #[arg(long, requires = "card")]
    pub reader: Option<String>,
    /// A PIN typed after --card (4 to 12 digits; a Modbus reader holds up to 9).
    #[arg(long, requires = "card")]
    pub pin: Option<String>,
    /// Play a working day (YYYY-MM-DD) of the site, sped up, on a private appliance
    /// running on a copy of the database (SQLite) with a clock as fast: arrivals, lunch,
    /// visits, exits, late and unknown cards, at the MQTT readers.
    #[arg(long, conflicts_with = "card")]
    pub day: Option<chrono::NaiveDate>,
    /// With --day: the part of the day to play, from (HH:MM on the site's clock).
    #[arg(long, requires = "day", default_value = "06:00")]
    pub from: chrono::NaiveTime,
    /// With --day: until (HH:MM, not included).
    #[arg(long, requires = "day", default_value = "22:00")]
    pub to: chrono::NaiveTime,
    /// With --day: how many times faster than real time (120: a 16-hour day in 8 minutes).
    #[arg(long, requires = "day", default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=3600))]
    pub speed: u32,
    /// With --day: how many of the site's card holders come in, at most.
    #[arg(long, requires = "day", default_value_t = 300)]
    pub people: usize,
    /// With --day: keep the day's database at this path, to look at the day in the console.
    #[arg(long, requires = "day")]
    pub keep: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin user; the password is read from the terminal (or stdin with --password-stdin).
    Create {
        username: String,
        /// admin, operator or auditor.
        #[arg(long, default_value = "admin")]
        role: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// List admin users.
    List,
    /// Set an admin's password.
    SetPassword {
        username: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable an admin: their sign-ins and tokens stop working.
    Disable { username: String },
    /// Enable a disabled admin again.
    Enable { username: String },
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Issue a token for an admin; it is printed once.
    Create {
        username: String,
        /// What the token is for.
        #[arg(long)]
        name: String,
        /// read_only (every GET, no change) or full (all the admin's role allows).
        #[arg(long, default_value = "full")]
        scope: admins::TokenScope,
        /// Expiry (RFC 3339).
        #[arg(long)]
        expires: Option<DateTime<Utc>>,
    },
    /// List tokens (never their text).
    List,
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the hash chain; exit 1 and name every broken entry if it was tampered with.
    Verify {
        /// A head recorded earlier, as SEQ:HASH (printed by a previous verify): also proves
        /// that no entry up to it was deleted or rewritten since.
        #[arg(long, value_name = "SEQ:HASH")]
        expect_head: Option<String>,
    },
    /// Print the newest entries.
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// Resolves which config file applies and loads it.
pub fn load_config(explicit: Option<&Path>) -> Result<Config> {
    let file = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let system = Path::new(config::SYSTEM_CONFIG);
            system.exists().then(|| system.to_path_buf())
        }
    };
    Ok(Config::load(file.as_deref(), std::env::vars())?)
}

/// Files this process creates (database, its journal, exports, keys) are for its owner only.
pub fn restrict_new_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The OS user running this command, as the CLI knows it: the one who ran sudo, else
/// `$USER`. (Whoever can run `gatehouse` on the appliance can set either: it records who
/// the session says it is, not a proof.)
fn os_user() -> String {
    std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        // rumqttd logs every ordinary client disconnect as an error; the appliance reports
        // what matters about its broker itself. GATEHOUSE_LOG=info,rumqttd=info shows it.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttd=off"));
    // Colours only for a person at a terminal: a log file or a pipe gets plain text.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    init_logging();
    restrict_new_files();
    let config = load_config(cli.config.as_deref())?;
    // Imports write readers: their hosts are held to the configured networks too.
    crate::entities::readers::set_allowed_networks(config.readers.networks()?);
    match cli.command {
        Command::CheckConfig => {
            println!("configuration is valid");
            for (setting, value) in config.summary() {
                println!("  {setting:<13} {value}");
            }
            for warning in config.secret_file_warnings() {
                println!("warning: {warning}");
            }
            for warning in busy_listeners(&config) {
                println!("warning: {warning}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            open_database(&config)?;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .max_blocking_threads(crate::app::serve::BLOCKING_THREADS_PER_WORKER)
                .build()
                .context("cannot start the async runtime")?;
            runtime.block_on(crate::app::serve::serve(config, Clock::System))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import(&config, args),
        Command::Export { output } => {
            let pool = open_database(&config)?;
            let mut conn = pool.get()?;
            let text = crate::io::site_file::export(&mut conn)?;
            match output {
                Some(path) => {
                    std::fs::write(&path, text)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("wrote {}", path.display());
                }
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Explain(args) => explain(&config, args),
        Command::Simulate(args) => {
            let pool = open_database(&config)?;
            let runtime =
                tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
            runtime.block_on(crate::cli::simulate::run(
                &config,
                &pool,
                crate::cli::simulate::SimulateOptions {
                    readers: args.readers.max(1),
                    swipes: args.swipes,
                    rate: args.rate,
                    protocols: args.protocol,
                    broker: args.broker,
                    ca: args.ca,
                    sign_events: args.sign,
                    seed: args.seed,
                    one_swipe: match (args.reader, args.card) {
                        (Some(reader_id), Some(card)) => Some(crate::cli::simulate::OneSwipe {
                            reader_id,
                            card,
                            pin: args.pin,
                        }),
                        _ => None,
                    },
                    day: args.day.map(|date| crate::cli::simulate::DayOptions {
                        date,
                        from: args.from,
                        to: args.to,
                        speed: args.speed,
                        people: args.people,
                        seed: args.seed,
                        keep: args.keep,
                    }),
                },
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin(cmd) => admin(&config, cmd),
        Command::Audit(cmd) => audit_command(&config, cmd),
        Command::Risk(cmd) => risk::run(&config, cmd),
    }
}

/// The addresses `serve` would listen on that cannot be listened on now (a port another
/// program holds, a port below 1024 without the right): `serve` would fail to start.
/// Warnings, not errors: a running gatehouse holds its own ports while its next config
/// is checked.
fn busy_listeners(config: &Config) -> Vec<String> {
    let mut listeners = Vec::new();
    if let Ok(addr) = config.listen_addr() {
        listeners.push(("[http] listen", "GATEHOUSE_HTTP_LISTEN", addr));
    }
    if config.mqtt.broker == config::BrokerChoice::Embedded {
        if let Ok(Some(addr)) = config.mqtt.plain_listen() {
            listeners.push(("[mqtt] listen", "GATEHOUSE_MQTT_LISTEN", addr));
        }
        if let Ok(Some(addr)) = config.mqtt.tls_listen_addr() {
            listeners.push(("[mqtt] tls_listen", "GATEHOUSE_MQTT_TLS_LISTEN", addr));
        }
    }
    listeners
        .into_iter()
        .filter(|(_, _, addr)| addr.port() != 0)
        .filter_map(|(setting, env, addr)| {
            let e = std::net::TcpListener::bind(addr).err()?;
            Some(format!(
                "{setting} {addr} cannot be listened on now ({e}): `gatehouse serve` will not \
                 start until it is free, unless that is this appliance, running; choose \
                 another with {setting} or {env}"
            ))
        })
        .collect()
}

fn import(config: &Config, args: ImportArgs) -> Result<ExitCode> {
    let pool = open_database(config)?;
    let mut conn = pool.get()?;
    // At a terminal one line counts up in place; in a log or a pipe each step is a line
    // of its own, every 10,000 entries.
    let terminal = std::io::stderr().is_terminal();
    let progress = move |done: usize, total: usize| {
        if total < 1000 {
            return;
        }
        if terminal && (done.is_multiple_of(1000) || done == total) {
            eprint!("\r  {done}/{total} entries");
            if done == total {
                eprintln!();
            }
        } else if !terminal && (done.is_multiple_of(10_000) || done == total) {
            eprintln!("  {done}/{total} entries");
        }
    };
    // The file as it was named on the command line: what the audit log says was imported.
    let provenance = |path: &Path| Provenance::import(&os_user(), &path.display().to_string());
    if let Some(path) = args.events {
        return import_events(config, &mut conn, &path, args.dry_run, &provenance(&path));
    }
    let report = if let Some(path) = args.people {
        let file = std::fs::File::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let provenance = provenance(&path);
        let ctx = ChangeContext {
            provenance: &provenance,
            now: Utc::now(),
        };
        crate::io::people_csv::import(&mut conn, file, &ctx, args.dry_run, &progress)
    } else if let Some(path) = args.file {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let provenance = provenance(&path);
        let ctx = ChangeContext {
            provenance: &provenance,
            now: Utc::now(),
        };
        crate::io::site_file::import(&mut conn, &text, &ctx, args.dry_run, &progress)
    } else {
        bail!("name a site file, or --people FILE.csv");
    };
    match report {
        Ok(summary) => {
            println!("{summary}");
            if args.dry_run {
                println!("dry run: nothing was written");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("nothing was imported; fix these entries and try again:");
            for e in errors.iter().take(50) {
                eprintln!("  {e}");
            }
            if errors.len() > 50 {
                eprintln!("  … and {} more", errors.len() - 50);
            }
            Ok(ExitCode::from(1))
        }
    }
}

/// `gatehouse import --events FILE.csv`: a progress line on a terminal (the file is read
/// twice: checked, then written), the summary, or every problem with its line.
fn import_events(
    config: &Config,
    conn: &mut crate::store::DbConnection,
    path: &Path,
    dry_run: bool,
    provenance: &Provenance,
) -> Result<ExitCode> {
    use crate::io::events_csv::{self, EventImportOptions, Phase};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let terminal = std::io::stderr().is_terminal();
    let progress = |p: &events_csv::Progress| {
        if !terminal {
            return;
        }
        let phase = match p.phase {
            Phase::Checking => "checking",
            Phase::Writing => "writing ",
        };
        let percent = (p.bytes * 100).checked_div(p.total_bytes).unwrap_or(100);
        eprint!("\r  {phase} {percent:>3}%  {} rows", p.rows);
        if p.bytes >= p.total_bytes {
            eprintln!();
        }
    };
    let ctx = ChangeContext {
        provenance,
        now: Utc::now(),
    };
    let options = EventImportOptions {
        dry_run,
        retention_days: config.events.retention_days,
    };
    match events_csv::import(conn, &mut file, &ctx, options, &progress) {
        Ok(summary) => {
            print!("{summary}");
            if dry_run {
                println!("dry run: nothing was written");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprintln!("nothing was imported; fix these lines and try again:");
            for e in errors.iter().take(50) {
                eprintln!("  {e}");
            }
            if errors.len() > 50 {
                eprintln!("  … and {} more", errors.len() - 50);
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn explain(config: &Config, args: ExplainArgs) -> Result<ExitCode> {
    use crate::policy::explain_query::{self, DoorQuery, SubjectQuery};
    let pool = open_database(config)?;
    let present = Utc::now();
    let live = LivePolicy::load(&pool, present)?;
    let snapshot = live.snapshot();
    let subject = if let Some(employee_id) = &args.person {
        SubjectQuery::EmployeeId(employee_id.clone())
    } else if let Some(card) = &args.card {
        SubjectQuery::Credential(card_key(card)?)
    } else if let Some(wiegand) = &args.wiegand {
        SubjectQuery::Credential(wiegand_key(wiegand)?)
    } else {
        bail!("name who asks: --person EMPLOYEE_ID, --card UID or --wiegand F:N");
    };
    let door = DoorQuery::Name(args.door.clone());
    let at = match &args.at {
        None => present,
        Some(text) => {
            let tz = snapshot
                .doors()
                .iter()
                .find(|d| d.name == args.door)
                .and_then(|d| snapshot.door_timezone(d.id))
                .unwrap_or(chrono_tz::Tz::UTC);
            explain_time(text, tz)?
        }
    };
    let answer = live.read_presence(|presence| {
        explain_query::answer(&snapshot, presence, &subject, &door, at, present)
    })?;
    let code = if answer.granted
        || answer.decision.outcome == crate::policy::decide::Outcome::PinRequired
    {
        EXPLAIN_GRANTED
    } else {
        EXPLAIN_DENIED
    };
    let text = if args.json {
        format!("{}\n", serde_json::to_string_pretty(&answer)?)
    } else {
        explain_query::to_text(&answer)
    };
    // A reader that stops early (`| head`) closes the pipe: that is no error, and the
    // answer's exit code stands.
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the explanation");
        }
        _ => {}
    }
    Ok(ExitCode::from(code))
}

/// A card as an admin types it: a UID in hex, or FACILITY:NUMBER for a Wiegand card.
fn card_key(text: &str) -> Result<CredentialKey> {
    if text.contains(':') {
        return wiegand_key(text);
    }
    Ok(CredentialKey::card(text)?)
}

fn wiegand_key(text: &str) -> Result<CredentialKey> {
    let (f, n) = text
        .split_once(':')
        .context("a Wiegand card is FACILITY:NUMBER, e.g. 12:34567")?;
    Ok(CredentialKey::Wiegand {
        facility: f
            .trim()
            .parse()
            .context("the facility code must be a whole number from 0 to 65535")?,
        number: n
            .trim()
            .parse()
            .context("the card number must be a whole number from 0 to 4294967295")?,
    })
}

/// `--at`: RFC 3339 with an offset, or a wall-clock time on `tz` (the door's site's),
/// "2026-12-25 10:00" or with seconds or a `T`. A time that the clock skips (a DST
/// change) is an error; one it passes twice is its first.
fn explain_time(text: &str, tz: chrono_tz::Tz) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
    ]
    .iter()
    .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
    .with_context(|| {
        format!(
            "--at takes a time on the door's clock like \"2026-12-25 10:00\" ({}), or \
                 RFC 3339 like 2026-12-25T10:00:00+01:00; not \"{text}\"",
            tz.name()
        )
    })?;
    local
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| {
            format!(
                "{text} does not exist on the clock of {} (a DST change)",
                tz.name()
            )
        })
}

/// A new admin password: asked twice at a terminal, else one line of standard input.
/// `command` is the command line to suggest when none came ("admin create NAME").
fn read_password(from_stdin: bool, command: &str) -> Result<String> {
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!(
                "no password was given: standard input {} and held no line. Run the command \
                 at a terminal to be asked for it, or pipe it in with --password-stdin, e.g. \
                 printf '%s\\n' \"$PASSWORD\" | gatehouse {command} --password-stdin",
                if from_stdin {
                    "was read (--password-stdin)"
                } else {
                    "is not a terminal"
                }
            );
        }
        password
    } else {
        let first = rpassword::prompt_password("Password (12 characters or more): ")?;
        let second = rpassword::prompt_password("Again: ")?;
        if first != second {
            bail!("the two passwords differ");
        }
        first
    };
    Ok(password)
}

fn admin(config: &Config, cmd: AdminCommand) -> Result<ExitCode> {
    let pool = open_database(config)?;
    let mut conn = pool.get()?;
    let provenance = Provenance::cli(&os_user());
    let ctx = ChangeContext {
        provenance: &provenance,
        now: Utc::now(),
    };
    match cmd {
        AdminCommand::Create {
            username,
            role,
            password_stdin,
        } => {
            let password = read_password(password_stdin, &format!("admin create {username}"))?;
            let input = admins::AdminInput {
                username,
                password,
                role,
            };
            let view =
                admins::create_admin(&mut conn, &input, &ctx).map_err(describe_change_error)?;
            println!("created {} '{}'", view.role.as_str(), view.username);
        }
        AdminCommand::List => {
            for a in admins::list_admins(&mut conn)? {
                println!(
                    "{:<24} {:<9} {}",
                    a.username,
                    a.role.as_str(),
                    if a.disabled { "disabled" } else { "active" }
                );
            }
        }
        AdminCommand::SetPassword {
            username,
            password_stdin,
        } => {
            let password =
                read_password(password_stdin, &format!("admin set-password {username}"))?;
            admins::set_password(&mut conn, &username, &password, &ctx)
                .map_err(describe_change_error)?;
            println!("password of '{username}' changed");
        }
        AdminCommand::Disable { username } => {
            admins::set_disabled(&mut conn, &username, true, &ctx)
                .map_err(describe_change_error)?;
            println!("'{username}' is disabled");
        }
        AdminCommand::Enable { username } => {
            admins::set_disabled(&mut conn, &username, false, &ctx)
                .map_err(describe_change_error)?;
            println!("'{username}' is enabled");
        }
        AdminCommand::Token(TokenCommand::Create {
            username,
            name,
            scope,
            expires,
        }) => {
            let issued = admins::issue_token(&mut conn, &username, &name, scope, expires, &ctx)
                .map_err(describe_change_error)?;
            eprintln!(
                "{} token {} for '{username}' (shown once; store it now):",
                scope.label(),
                issued.view.id
            );
            println!("{}", issued.token);
        }
        AdminCommand::Token(TokenCommand::List) => {
            for t in admins::list_tokens(&mut conn, None)? {
                println!(
                    "{:>5} admin#{:<5} {:<24} {:<9} {}",
                    t.id,
                    t.admin_user_id,
                    t.name,
                    t.scope.as_str(),
                    if t.revoked { "revoked" } else { "active" }
                );
            }
        }
        AdminCommand::Token(TokenCommand::Revoke { id }) => {
            admins::revoke_token(&mut conn, id, &ctx).map_err(describe_change_error)?;
            println!("token {id} revoked");
        }
    }
    std::io::stdout().flush()?;
    Ok(ExitCode::SUCCESS)
}

fn describe_change_error(e: crate::entities::ChangeError) -> anyhow::Error {
    match e {
        crate::entities::ChangeError::Invalid(fields) => {
            let lines: Vec<String> = fields
                .0
                .iter()
                .flat_map(|(f, ms)| ms.iter().map(move |m| format!("{f}: {m}")))
                .collect();
            anyhow::anyhow!("{}", lines.join("; "))
        }
        other => anyhow::anyhow!("{other}"),
    }
}

fn audit_command(config: &Config, cmd: AuditCommand) -> Result<ExitCode> {
    let pool = open_database(config)?;
    let mut conn = pool.get()?;
    match cmd {
        AuditCommand::Verify { expect_head } => {
            let mut report = audit::verify(&mut conn)?;
            if let Some(head) = expect_head {
                let (seq, hash) = head
                    .split_once(':')
                    .and_then(|(s, h)| s.parse::<i64>().ok().map(|s| (s, h.to_owned())))
                    .context(
                        "--expect-head takes SEQ:HASH, as printed by `gatehouse audit verify`",
                    )?;
                report
                    .problems
                    .extend(audit::check_recorded_head(&mut conn, seq, &hash)?);
            }
            if report.is_intact() {
                println!(
                    "audit log intact: {} entries, head {}:{}",
                    report.entries, report.head_seq, report.head_hash
                );
                println!("keep the head somewhere safe; `--expect-head` checks it later");
                Ok(ExitCode::SUCCESS)
            } else {
                println!("audit log has been tampered with:");
                for p in &report.problems {
                    println!("  entry #{}: {}", p.seq, p.problem);
                }
                Ok(ExitCode::from(1))
            }
        }
        AuditCommand::List { limit } => {
            for row in audit::list(&mut conn, None, 0, limit.clamp(1, 10_000))? {
                let provenance = audit::provenance_of(&row);
                let approval = provenance
                    .approver_text()
                    .map(|approver| format!(", approved by {approver}"))
                    .unwrap_or_default();
                println!(
                    "#{:<6} {} {} (asked by {}{approval}, through {})",
                    row.seq,
                    row.at.format("%Y-%m-%d %H:%M:%S"),
                    row.summary,
                    provenance.requester_text(),
                    provenance.channel_text(),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
