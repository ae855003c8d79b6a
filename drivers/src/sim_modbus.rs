//! A simulated Modbus TCP reader: a real tokio-modbus server holding docs/protocol.md's register
//! map, with methods that swipe cards and press its inputs, and a record of what the
//! appliance wrote. Used by `gatehouse simulate`, the tests and the benchmarks.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use crate::modbus_map::{
    Beeper, COIL_LOCK_RELAY, DI_DOOR_OPEN, DI_REX, DI_TAMPER, DISCRETE_INPUTS, HR_BEEPER, HR_LED,
    Led, SWIPE_REGISTERS, encode_swipe,
};

/// How the simulated device answers; the last two are for fault tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// Answers every request with bytes that are not Modbus (on a new connection) or with
    /// the wrong function (on an open one).
    Garbage,
    /// Accepts connections and requests and never answers.
    Silent,
}

/// One output the appliance set, and when it arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Relay { unlocked: bool },
    Led(Led),
    Beeper(Beeper),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub output: Output,
    pub at: Instant,
}

struct DeviceState {
    input: [u16; SWIPE_REGISTERS as usize],
    discrete: [bool; DISCRETE_INPUTS as usize],
    relay: bool,
    led: u16,
    behaviour: Behaviour,
    /// Polls served: reads of the swipe registers.
    polls: u64,
}

type Shared = Arc<Mutex<DeviceState>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, DeviceState> {
    match state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// The server side of one connection.
struct DeviceService {
    unit: u8,
    state: Shared,
    written: mpsc::UnboundedSender<Written>,
}

type Answer = Result<Option<Response>, ExceptionCode>;

fn led_of(word: u16) -> Option<Led> {
    [Led::Off, Led::Red, Led::Green, Led::Amber]
        .into_iter()
        .find(|l| *l as u16 == word)
}

fn beeper_of(word: u16) -> Option<Beeper> {
    [
        Beeper::Silent,
        Beeper::Grant,
        Beeper::Deny,
        Beeper::PinNeeded,
    ]
    .into_iter()
    .find(|b| *b as u16 == word)
}

impl DeviceService {
    fn answer(&self, request: SlaveRequest<'static>) -> Answer {
        if request.slave != self.unit {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        let mut state = lock(&self.state);
        match state.behaviour {
            Behaviour::Normal => {}
            Behaviour::Garbage => return Ok(Some(Response::ReadCoils(vec![true; 8]))),
            Behaviour::Silent => return Ok(None),
        }
        let now = Instant::now();
        let range = |addr: u16, count: u16, len: usize| {
            let (start, end) = (usize::from(addr), usize::from(addr) + usize::from(count));
            (count > 0 && end <= len).then_some(start..end)
        };
        let mut outputs = Vec::new();
        let response = match request.request {
            Request::ReadInputRegisters(addr, count) => {
                let r = range(addr, count, state.input.len())
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                if addr == 0 {
                    state.polls += 1;
                }
                Response::ReadInputRegisters(state.input[r].to_vec())
            }
            Request::ReadDiscreteInputs(addr, count) => {
                let r = range(addr, count, state.discrete.len())
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                Response::ReadDiscreteInputs(state.discrete[r].to_vec())
            }
            Request::ReadCoils(addr, 1) if addr == COIL_LOCK_RELAY => {
                Response::ReadCoils(vec![state.relay])
            }
            Request::WriteSingleCoil(addr, on) if addr == COIL_LOCK_RELAY => {
                state.relay = on;
                outputs.push(Output::Relay { unlocked: on });
                Response::WriteSingleCoil(addr, on)
            }
            Request::ReadHoldingRegisters(addr, count) => {
                let r = range(addr, count, 2).ok_or(ExceptionCode::IllegalDataAddress)?;
                // The beeper reads 0: the device clears it once played.
                Response::ReadHoldingRegisters([state.led, 0][r].to_vec())
            }
            Request::WriteSingleRegister(addr, word) => {
                outputs.push(holding_output(addr, word)?);
                if addr == HR_LED {
                    state.led = word;
                }
                Response::WriteSingleRegister(addr, word)
            }
            Request::WriteMultipleRegisters(addr, words) => {
                range(addr, u16::try_from(words.len()).unwrap_or(u16::MAX), 2)
                    .ok_or(ExceptionCode::IllegalDataAddress)?;
                for (i, word) in words.iter().enumerate() {
                    let at = addr + u16::try_from(i).unwrap_or(0);
                    outputs.push(holding_output(at, *word)?);
                    if at == HR_LED {
                        state.led = *word;
                    }
                }
                Response::WriteMultipleRegisters(addr, u16::try_from(words.len()).unwrap_or(0))
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        drop(state);
        for output in outputs {
            let _ = self.written.send(Written { output, at: now });
        }
        Ok(Some(response))
    }
}

fn holding_output(addr: u16, word: u16) -> Result<Output, ExceptionCode> {
    match addr {
        HR_LED => led_of(word).map(Output::Led),
        HR_BEEPER => beeper_of(word).map(Output::Beeper),
        _ => return Err(ExceptionCode::IllegalDataAddress),
    }
    .ok_or(ExceptionCode::IllegalDataValue)
}

impl tokio_modbus::server::Service for DeviceService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Answer>;

    fn call(&self, request: Self::Request) -> Self::Future {
        std::future::ready(self.answer(request))
    }
}

/// Answers a new connection with noise, or never, for the fault behaviours. The noise is
/// shaped like a short frame with a wrong protocol id, so that a client can tell it is
/// garbage at once (noise that declares a long frame is, to a client, silence).
async fn misbehave(mut stream: TcpStream, behaviour: Behaviour) {
    let mut buf = [0u8; 512];
    let mut noise: u32 = 0x9E37_79B9;
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
        if behaviour == Behaviour::Garbage {
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let [a, b, ..] = noise.to_le_bytes();
            let junk = [buf[0], buf[1], 0xDE, 0xAD, 0x00, 0x03, buf[6], a, b];
            if stream.write_all(&junk).await.is_err() {
                return;
            }
        }
    }
}

/// A simulated Modbus reader listening on loopback (or wherever it was bound).
pub struct SimDevice {
    addr: SocketAddr,
    state: Shared,
    written: mpsc::UnboundedReceiver<Written>,
    server: tokio::task::AbortHandle,
}

impl Drop for SimDevice {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Accepted = io::Result<Option<(DeviceService, TcpStream)>>;

impl SimDevice {
    /// Binds `bind` (port 0 for any free port) and serves unit `unit`.
    pub async fn start(bind: SocketAddr, unit: u8) -> io::Result<SimDevice> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::new(Mutex::new(DeviceState {
            input: [0; SWIPE_REGISTERS as usize],
            discrete: [false; DISCRETE_INPUTS as usize],
            relay: false,
            led: Led::Off as u16,
            behaviour: Behaviour::Normal,
            polls: 0,
        }));
        let (tx, written) = mpsc::unbounded_channel();
        let for_server = state.clone();
        let server = tokio::spawn(async move {
            let on_connected = move |stream: TcpStream,
                                     _peer: SocketAddr|
                  -> Pin<Box<dyn Future<Output = Accepted> + Send>> {
                let _ = stream.set_nodelay(true);
                let behaviour = lock(&for_server).behaviour;
                if behaviour != Behaviour::Normal {
                    tokio::spawn(misbehave(stream, behaviour));
                    return Box::pin(std::future::ready(Ok(None)));
                }
                let service = DeviceService {
                    unit,
                    state: for_server.clone(),
                    written: tx.clone(),
                };
                Box::pin(std::future::ready(Ok(Some((service, stream)))))
            };
            let _ = Server::new(listener).serve(&on_connected, |_| {}).await;
        })
        .abort_handle();
        Ok(SimDevice {
            addr,
            state,
            written,
            server,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Presents a card (and a PIN, up to 9 digits): the swipe registers change and the
    /// counter moves on. Returns when it happened, or None for a UID or PIN the register
    /// map cannot hold.
    pub fn swipe(&self, uid: &str, pin: Option<&str>) -> Option<Instant> {
        self.swipe_after_missed(uid, pin, 0)
    }

    /// A swipe that comes after `missed` others that came and went between two polls (a
    /// device read faster than it is polled).
    pub fn swipe_after_missed(&self, uid: &str, pin: Option<&str>, missed: u16) -> Option<Instant> {
        let mut state = lock(&self.state);
        let counter = state.input[0].wrapping_add(missed).wrapping_add(1);
        state.input = encode_swipe(counter, uid, pin)?;
        Some(Instant::now())
    }

    /// Moves the swipe counter without valid swipe registers (a device bug).
    pub fn swipe_garbage(&self) {
        let mut state = lock(&self.state);
        state.input[0] = state.input[0].wrapping_add(1);
        state.input[1] = 99;
    }

    pub fn set_door_open(&self, open: bool) {
        lock(&self.state).discrete[usize::from(DI_DOOR_OPEN)] = open;
    }

    pub fn set_rex_pressed(&self, pressed: bool) {
        lock(&self.state).discrete[usize::from(DI_REX)] = pressed;
    }

    pub fn set_tamper(&self, active: bool) {
        lock(&self.state).discrete[usize::from(DI_TAMPER)] = active;
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        lock(&self.state).behaviour = behaviour;
    }

    /// Whether the lock relay is on (the door unlocked).
    pub fn relay_unlocked(&self) -> bool {
        lock(&self.state).relay
    }

    pub fn led(&self) -> Option<Led> {
        led_of(lock(&self.state).led)
    }

    /// Polls served so far.
    pub fn polls(&self) -> u64 {
        lock(&self.state).polls
    }

    /// The next output the appliance set, waiting up to `timeout`.
    pub async fn next_write(&mut self, timeout: Duration) -> Option<Written> {
        tokio::time::timeout(timeout, self.written.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits for the appliance's answer to a swipe: the next beeper pattern, and when the
    /// answer reached the device (for a grant, the moment the relay was unlocked).
    pub async fn answer(&mut self, timeout: Duration) -> Option<(Beeper, Instant)> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut unlocked_at = None;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let written = self.next_write(left).await?;
            match written.output {
                Output::Relay { unlocked: true } => unlocked_at = Some(written.at),
                Output::Beeper(beeper) if beeper != Beeper::Silent => {
                    return Some((beeper, unlocked_at.unwrap_or(written.at)));
                }
                _ => {}
            }
        }
    }

    /// Forgets outputs written so far (mode and relock writes a test does not care about).
    pub fn clear_writes(&mut self) {
        while self.written.try_recv().is_ok() {}
    }
}
