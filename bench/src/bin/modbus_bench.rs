//! Modbus TCP at building scale: the appliance polling 256 simulated devices every 50 ms
//! while people swipe. Reports the achieved poll cadence, swipe → relay-write latency and
//! the appliance's CPU, beside the floor measured in the same run: a bare tokio-modbus
//! client making the same two reads of the same devices at the same cadence, and nothing
//! else.
//!
//! cargo run --release -p gatehouse-bench --bin modbus-bench -- --devices 256 --seconds 20

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use clap::Parser;
use gatehouse::clock::Clock;
use gatehouse::config::{BrokerChoice, Config, ModbusConfig};
use gatehouse::entities::ChangeContext;
use gatehouse_bench::appliance::{runtime, wait_online};
use gatehouse_bench::measure::{Stats, fmt_duration, machine, thread_cpu};
use gatehouse_drivers::modbus_map::{Beeper, DISCRETE_INPUTS, SWIPE_REGISTERS};
use gatehouse_drivers::sim_modbus::SimDevice;
use tokio_modbus::client::Client;
use tokio_modbus::{Request, Slave};

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 256)]
    devices: usize,
    /// The poll interval under test, in milliseconds.
    #[arg(long, default_value_t = 50)]
    poll_ms: u64,
    /// Length of each measured window.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Each device sees a swipe this often, in seconds (staggered across devices).
    #[arg(long, default_value_t = 2.0)]
    swipe_every: f64,
}

/// Thread names: the simulated devices, and the floor's bare client. Every other thread of
/// the process is the appliance's (its runtime, its HTTP workers, the blocking pool).
const DEVICES: &str = "devices";
const FLOOR: &str = "floor";

/// The floor: two reads per device per interval, as the appliance's poller makes them.
async fn bare_poll(
    addr: SocketAddr,
    interval: Duration,
    stop: Arc<AtomicBool>,
    polls: Arc<AtomicU64>,
) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let _ = stream.set_nodelay(true);
    let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let regs = ctx
            .call(Request::ReadInputRegisters(0, SWIPE_REGISTERS))
            .await;
        let inputs = ctx
            .call(Request::ReadDiscreteInputs(0, DISCRETE_INPUTS))
            .await;
        if regs.is_ok() && inputs.is_ok() {
            polls.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The site: one door and one Modbus reader per device, everyone allowed everywhere.
fn site_file(addrs: &[SocketAddr], people: usize) -> String {
    let mut s = String::from(
        "version = 1\n\n[[sites]]\nname = \"Bench\"\ntimezone = \"UTC\"\n\n\
         [[schedules]]\nname = \"Always\"\nholidays = \"ignore\"\nwindows = [{ cron = \"0 0 * * *\", duration_min = 1440 }]\n\n\
         [[zones]]\nsite = \"Bench\"\nname = \"Floor\"\n\n\
         [[levels]]\nname = \"Everyone\"\nitems = [{ site = \"Bench\", zone = \"Floor\", schedule = \"Always\" }]\n\n",
    );
    for (i, addr) in addrs.iter().enumerate() {
        s.push_str(&format!(
            "[[doors]]\nname = \"Door {i}\"\nsite = \"Bench\"\nzone = \"Floor\"\nunlock_ms = 500\n\n\
             [[readers]]\nreader_id = \"mb-{i}\"\ndoor = \"Door {i}\"\nprotocol = \"modbus\"\n\
             modbus_host = \"{}\"\nmodbus_port = {}\nmodbus_unit = 1\n\n",
            addr.ip(),
            addr.port()
        ));
    }
    for p in 0..people {
        s.push_str(&format!(
            "[[people]]\nemployee_id = \"E{p}\"\nname = \"Person {p}\"\n\n\
             [[credentials]]\nemployee_id = \"E{p}\"\ncard_uid = \"{}\"\n\n\
             [[entitlements]]\nemployee_id = \"E{p}\"\nlevel = \"Everyone\"\n\n",
            card(p)
        ));
    }
    s
}

fn card(p: usize) -> String {
    format!("0B{p:08X}")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let interval = Duration::from_millis(args.poll_ms);
    let window = Duration::from_secs(args.seconds);
    println!("machine: {}", machine());
    println!(
        "{} devices, polled every {} ms, windows of {} s, a swipe per device every {} s",
        args.devices, args.poll_ms, args.seconds, args.swipe_every
    );
    let devices_rt = runtime(DEVICES, 1)?;
    let mut devices = Vec::new();
    for _ in 0..args.devices {
        devices.push(devices_rt.block_on(SimDevice::start("127.0.0.1:0".parse()?, 1))?);
    }
    let addrs: Vec<SocketAddr> = devices.iter().map(SimDevice::addr).collect();

    // The floor: a bare client, nothing decided or recorded.
    let floor_rt = runtime(FLOOR, 2)?;
    let stop = Arc::new(AtomicBool::new(false));
    let floor_polls = Arc::new(AtomicU64::new(0));
    for addr in &addrs {
        floor_rt.spawn(bare_poll(
            *addr,
            interval,
            stop.clone(),
            floor_polls.clone(),
        ));
    }
    std::thread::sleep(Duration::from_secs(1));
    let (floor_cpu0, _) = thread_cpu(&[FLOOR]);
    let polls0 = floor_polls.load(Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(window);
    let (floor_cpu1, _) = thread_cpu(&[FLOOR]);
    let floor_elapsed = started.elapsed();
    let floor_done = floor_polls.load(Ordering::Relaxed) - polls0;
    stop.store(true, Ordering::Relaxed);
    floor_rt.shutdown_timeout(Duration::from_secs(2));
    let floor_cpu = floor_cpu1.saturating_sub(floor_cpu0);

    // The appliance, on its embedded defaults but for the ports.
    let dir = tempfile::tempdir()?;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        http: gatehouse::config::HttpConfig {
            listen: "127.0.0.1:0".to_owned(),
            ..Default::default()
        },
        mqtt: gatehouse::config::MqttConfig {
            broker: BrokerChoice::Off,
            ..Default::default()
        },
        modbus: ModbusConfig {
            poll_interval_ms: args.poll_ms,
            ..ModbusConfig::default()
        },
        ..Config::default()
    };
    {
        let pool = gatehouse::app::database::open_database(&config)?;
        let mut conn = pool.get()?;
        let people = 1000;
        let ctx = ChangeContext {
            provenance: &gatehouse::identity::provenance::Provenance::cli("bench"),
            now: Utc::now(),
        };
        gatehouse::io::site_file::import(
            &mut conn,
            &site_file(&addrs, people),
            &ctx,
            false,
            &|_, _| {},
        )
        .map_err(|e| anyhow::anyhow!("site import: {e:?}"))?;
    }
    let appliance_rt = runtime("appliance", 2)?;
    let running = appliance_rt
        .block_on(gatehouse::app::serve::start(config, Clock::System))
        .context("the appliance starts")?;
    let server = running.server;
    appliance_rt.spawn(server);
    let health = running.state.health.clone();
    let ids: Vec<String> = (0..args.devices).map(|i| format!("mb-{i}")).collect();
    wait_online(&health, &ids, Duration::from_secs(60))?;
    std::thread::sleep(Duration::from_secs(2));

    // Swipes: every device on its own staggered clock, for the window.
    let polls_before: u64 = devices.iter().map(SimDevice::polls).sum();
    let (_, appliance_cpu0) = thread_cpu(&[DEVICES, FLOOR]);
    let started = Instant::now();
    let every = Duration::from_secs_f64(args.swipe_every);
    let count = args.devices;
    let mut tasks = Vec::new();
    for (i, mut device) in devices.into_iter().enumerate() {
        let offset = every.mul_f64(i as f64 / count as f64);
        tasks.push(devices_rt.spawn(async move {
            let mut latencies = Vec::new();
            let mut wrong = 0usize;
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(every);
            let end = tokio::time::Instant::now() + window - offset;
            let mut p = i;
            loop {
                tick.tick().await;
                if tokio::time::Instant::now() >= end {
                    break;
                }
                device.clear_writes();
                p = (p + 7) % 1000;
                let Some(swiped) = device.swipe(&card(p), None) else {
                    break;
                };
                match device.answer(Duration::from_secs(2)).await {
                    Some((Beeper::Grant, at)) => {
                        latencies.push(at.saturating_duration_since(swiped))
                    }
                    _ => wrong += 1,
                }
            }
            (device, latencies, wrong)
        }));
    }
    let mut latencies = Vec::new();
    let mut wrong = 0;
    let mut devices = Vec::new();
    for task in tasks {
        let (device, l, w) = devices_rt.block_on(task)?;
        latencies.extend(l);
        wrong += w;
        devices.push(device);
    }
    let elapsed = started.elapsed();
    let (_, appliance_cpu1) = thread_cpu(&[DEVICES, FLOOR]);
    let polls: u64 = devices.iter().map(SimDevice::polls).sum::<u64>() - polls_before;
    let appliance_cpu = appliance_cpu1.saturating_sub(appliance_cpu0);
    let stats = health.of(ids.iter().map(String::as_str));
    let intervals: Vec<f64> = stats
        .iter()
        .filter_map(|h| h.poll.as_ref().map(|p| p.mean_interval_ms))
        .collect();

    let per_device_hz =
        |polls: u64, elapsed: Duration| polls as f64 / args.devices as f64 / elapsed.as_secs_f64();
    let cpu_pct =
        |cpu: Duration, elapsed: Duration| cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0;
    let target = 1000.0 / args.poll_ms as f64;
    let floor_hz = per_device_hz(floor_done, floor_elapsed);
    let hz = per_device_hz(polls, elapsed);
    let lat = Stats::of(latencies);
    println!();
    println!("| | polls/s per device (target {target:.1}) | mean interval | CPU (% of one core) |");
    println!("|---|---|---|---|");
    println!(
        "| floor: bare tokio-modbus client, two reads per poll | {floor_hz:.2} | {:.1} ms | {:.1} % |",
        1000.0 / floor_hz.max(0.001),
        cpu_pct(floor_cpu, floor_elapsed)
    );
    println!(
        "| Gatehouse: poll, decide, record, write the relay | {hz:.2} | {:.1} ms (per-device averages {:.1}–{:.1} ms) | {:.1} % |",
        1000.0 / hz.max(0.001),
        intervals.iter().copied().fold(f64::INFINITY, f64::min),
        intervals.iter().copied().fold(0.0, f64::max),
        cpu_pct(appliance_cpu, elapsed)
    );
    println!(
        "\ncadence: {:.3} of the floor's; CPU: {:.2}× the floor's",
        hz / floor_hz.max(0.001),
        appliance_cpu.as_secs_f64() / floor_cpu.as_secs_f64().max(1e-9)
    );
    println!(
        "swipe → relay write: {} swipes ({wrong} not granted or unanswered), p50 {}, p99 {}, max {} (target p99 ≤ {} ms: {})",
        lat.n,
        fmt_duration(lat.p50),
        fmt_duration(lat.p99),
        fmt_duration(lat.max),
        args.poll_ms + 5,
        if lat.p99 <= interval + Duration::from_millis(5) && wrong == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(devices);
    appliance_rt.shutdown_timeout(Duration::from_secs(2));
    Ok(())
}
