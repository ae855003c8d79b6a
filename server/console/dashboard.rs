//! The dashboard: today's counts, open doors, readers offline, and the live event feed
//! (the newest events at load, then each new one over server-sent events).

use std::sync::Arc;
use std::time::Duration;

use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::kit::session::Viewer;
use super::kit::site_clock::{DATE_TIME, TIME_OF_DAY, on_clock};
use super::kit::{Chrome, PageError, Section, page};
use crate::app::state::AppState;
use crate::policy::Snapshot;
use crate::store::event_log::{Event, EventFilter, EventKind, Recorded, recent};

/// Offline readers named on the dashboard; the rest are counted.
const OFFLINE_SHOWN: usize = 12;

/// Events shown in the feed when the dashboard loads.
const FEED_LENGTH: i64 = 25;

/// One line of an event feed: the recorded event, and what it says in words.
pub struct FeedItem {
    pub event: Arc<Recorded>,
    /// What happened: "Card granted", "Door forced open", …
    pub what: &'static str,
    pub person: Option<(i64, String)>,
    pub door: Option<String>,
    /// `granted`, `denied`, `pin_required`, or `alarm`/`info` for non-swipe events.
    pub tone: &'static str,
    /// The result word people search for: "granted", "denied", "PIN asked".
    pub result: Option<&'static str>,
    /// Why, for a denial: the deny code in words.
    pub why: Option<String>,
    /// The timezone of the site the event happened at (its door's, or its reader's
    /// door's); None for one tied to no site, such as a fault of an unknown reader.
    pub zone: Option<Tz>,
}

impl FeedItem {
    pub fn id(&self) -> i64 {
        self.event.id
    }

    pub fn at(&self) -> DateTime<Utc> {
        self.event.event.at
    }

    pub fn reader(&self) -> Option<&str> {
        self.event.event.reader_id.as_deref()
    }

    /// The clock the event is read on: its site's, else the page's `page`.
    pub fn zone_or(&self, page: Tz) -> Tz {
        self.zone.unwrap_or(page)
    }

    /// The event's time of day on its site's clock, marked with the zone when that is not
    /// the page's clock `page`.
    pub fn clock(&self, page: &Tz) -> String {
        on_clock(&self.at(), self.zone_or(*page), *page, TIME_OF_DAY)
    }

    /// The event's date and time on its site's clock, marked like [`FeedItem::clock`].
    pub fn time(&self, page: &Tz) -> String {
        on_clock(&self.at(), self.zone_or(*page), *page, DATE_TIME)
    }

    pub fn new(recorded: impl Into<Arc<Recorded>>, snapshot: &Snapshot) -> FeedItem {
        let recorded = recorded.into();
        let event = &recorded.event;
        let swipe = event.kind == EventKind::Swipe;
        let (what, tone) = match event.kind {
            EventKind::Swipe => match event.result.as_deref() {
                Some("granted") => ("Card", "granted"),
                Some("pin_required") => ("Card", "pin_required"),
                _ => ("Card", "denied"),
            },
            EventKind::DoorOpen => ("Door opened", "info"),
            EventKind::DoorClosed => ("Door closed", "info"),
            EventKind::ForcedOpen => ("Door forced open", "alarm"),
            EventKind::HeldOpen => ("Door held open", "alarm"),
            EventKind::Rex => ("Exit button", "info"),
            EventKind::Tamper => ("Reader tampered with", "alarm"),
            EventKind::TamperCleared => ("Tamper cleared", "info"),
            EventKind::ReaderOnline => ("Reader online", "info"),
            EventKind::ReaderOffline => ("Reader offline", "alarm"),
            EventKind::ReaderFault => ("Reader fault", "alarm"),
            EventKind::RemoteUnlock => ("Unlocked from the console", "info"),
            EventKind::PinLockout => ("Card blocked: wrong PINs", "alarm"),
            EventKind::PresenceReset => ("Anti-passback reset", "info"),
        };
        let result = match event.result.as_deref() {
            _ if !swipe => None,
            Some("granted") => Some("granted"),
            Some("pin_required") => Some("PIN asked"),
            _ => Some("denied"),
        };
        FeedItem {
            what,
            person: event.person_id.map(|id| {
                (
                    id,
                    snapshot
                        .person(id)
                        .map_or_else(|| format!("person {id}"), |p| p.name.clone()),
                )
            }),
            door: event.door_id.map(|id| {
                snapshot
                    .door(id)
                    .map_or_else(|| format!("door {id}"), |d| d.name.clone())
            }),
            tone,
            result,
            why: event.deny_code.as_deref().map(deny_words),
            zone: event_zone(event, snapshot),
            event: recorded,
        }
    }
}

/// The timezone of the site an event happened at: its door's, else its reader's door's.
fn event_zone(event: &Event, snapshot: &Snapshot) -> Option<Tz> {
    match (event.door_id, event.reader_id.as_deref()) {
        (Some(door), _) => snapshot.door_timezone(door),
        (None, Some(reader)) => snapshot
            .reader(reader)
            .and_then(|r| snapshot.site_timezone(r.site.id)),
        (None, None) => None,
    }
}

/// A deny code as the person at the desk would say it.
pub fn deny_words(code: &str) -> String {
    match code {
        "unknown_credential" => "card not known".to_owned(),
        "inactive" => "card or person not active (lost, revoked, suspended)".to_owned(),
        "expired" => "card or person outside its valid dates".to_owned(),
        "no_entitlement" => "no access to this door".to_owned(),
        "schedule" => "outside their schedule".to_owned(),
        "lockdown" => "lockdown".to_owned(),
        "antipassback" => "anti-passback".to_owned(),
        "pin_wrong" => "wrong PIN".to_owned(),
        "risk" => "refused on risk".to_owned(),
        "door_mode" => "door locked by its mode".to_owned(),
        other => other.replace('_', " "),
    }
}

#[derive(Template)]
#[template(path = "partials/feed_item.html")]
struct FeedItemFragment<'a> {
    item: &'a FeedItem,
    chrome_tz: Tz,
}

/// The counts and states at the top of the dashboard, refreshed every few seconds.
#[derive(Template)]
#[template(path = "partials/dashboard_status.html")]
pub struct StatusPanel {
    granted: i64,
    denied: i64,
    alarms: i64,
    readers_total: usize,
    readers_offline_total: usize,
    /// The first few offline readers by id; the doors page has them all.
    readers_offline: Vec<String>,
    open_doors: Vec<OpenDoorLine>,
    /// Doors an admin unlocked, and until when (on the door's site's clock).
    unlocked_doors: Vec<(String, String)>,
}

/// A door reported open, as the dashboard lists it.
pub struct OpenDoorLine {
    name: String,
    /// Open since, on the door's site's clock.
    since: String,
    /// Open past its threshold (a held-open alarm was raised).
    held_open: bool,
    forced: bool,
    /// Only the last known: the reader that reported it is offline.
    stale: bool,
}

/// Alarms waiting for someone, with the buttons that acknowledge them.
#[derive(Template)]
#[template(path = "partials/alarms.html")]
pub struct AlarmsPanel {
    alarms: Vec<FeedItem>,
    csrf: String,
    can_change: bool,
    chrome_tz: Tz,
}

/// Open alarms shown at once; more are counted and found on the events page.
const ALARMS_SHOWN: i64 = 20;

async fn alarms_panel(state: &AppState, chrome: &Chrome) -> Result<AlarmsPanel, PageError> {
    let now = state.clock.now();
    let rows = state
        .read(move |conn| Ok(crate::readers::alarms::open(conn, now, ALARMS_SHOWN)?))
        .await?;
    let snapshot = state.live.snapshot();
    Ok(AlarmsPanel {
        alarms: rows
            .into_iter()
            .map(|row| FeedItem::new(row, &snapshot))
            .collect(),
        csrf: chrome.csrf.clone(),
        can_change: chrome.can_change(),
        chrome_tz: chrome.timezone,
    })
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    status: StatusPanel,
    alarms: AlarmsPanel,
    feed: Vec<FeedItem>,
}

/// The midnight that begins today on `tz`'s clock. The dashboard's "today" is the page's
/// clock's (the first site's): one day for the whole appliance, as its counts are one
/// tally, even where other sites' days begin hours earlier or later.
fn local_midnight(now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let local = now.with_timezone(&tz).date_naive();
    local
        .and_hms_opt(0, 0, 0)
        .and_then(|midnight| midnight.and_local_timezone(tz).earliest())
        .map_or(now, |t| t.with_timezone(&Utc))
}

async fn status_panel(state: &AppState, tz: Tz) -> Result<StatusPanel, PageError> {
    let now = state.clock.now();
    let since = local_midnight(now, tz);
    let tally = state.day_tally.clone();
    let counts = state
        .read(move |conn| Ok(tally.counts_since(conn, since, now)?))
        .await?;
    let (mut granted, mut denied, mut alarms) = (0, 0, 0);
    for (kind, result, n) in counts {
        match (kind.as_str(), result.as_deref()) {
            ("swipe", Some("granted")) => granted += n,
            ("swipe", Some("denied")) => denied += n,
            // Every kind the alarms panel lists beside this count (a reader going offline
            // too), so that the two agree.
            (kind, _)
                if crate::readers::alarms::ALARM_KINDS
                    .iter()
                    .any(|alarm| alarm.as_str() == kind) =>
            {
                alarms += n
            }
            _ => {}
        }
    }
    let snapshot = state.live.snapshot();
    let readers = state.live.readers();
    let mut ids: Vec<&str> = readers.iter().map(|r| r.reader_id.as_str()).collect();
    ids.sort_unstable();
    let health = state.health.of(ids.iter().copied());
    let offline: Vec<String> = health
        .iter()
        .filter(|h| h.online != Some(true))
        .map(|h| h.reader_id.clone())
        .collect();
    let readers_offline_total = offline.len();
    let readers_offline = offline.into_iter().take(OFFLINE_SHOWN).collect();
    let offline_now = state.health.offline();
    let open = match state.doors.lock() {
        Ok(doors) => doors.open_doors(|r| offline_now.contains(r)),
        Err(_) => Vec::new(),
    };
    let door_name = |door_id: i64| {
        snapshot
            .door(door_id)
            .map_or_else(|| format!("door {door_id}"), |door| door.name.clone())
    };
    let open_doors = open
        .into_iter()
        .map(|d| {
            let door_tz = snapshot.door_timezone(d.door_id).unwrap_or(tz);
            OpenDoorLine {
                name: door_name(d.door_id),
                since: on_clock(&d.since, door_tz, tz, TIME_OF_DAY),
                held_open: d.held_open,
                forced: d.forced,
                stale: d.stale,
            }
        })
        .collect();
    let unlocked_doors = state
        .hub
        .unlocked_doors()
        .into_iter()
        .map(|(door_id, until)| {
            let door_tz = snapshot.door_timezone(door_id).unwrap_or(tz);
            (
                door_name(door_id),
                on_clock(&until, door_tz, tz, TIME_OF_DAY),
            )
        })
        .collect();
    Ok(StatusPanel {
        granted,
        denied,
        alarms,
        readers_total: ids.len(),
        readers_offline_total,
        readers_offline,
        open_doors,
        unlocked_doors,
    })
}

/// GET /
pub async fn show(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let chrome = Chrome::new(&state, &viewer, Section::Dashboard);
    let status = status_panel(&state, chrome.timezone).await?;
    let alarms = alarms_panel(&state, &chrome).await?;
    let rows = state
        .read(|conn| Ok(recent(conn, &EventFilter::default(), FEED_LENGTH)?))
        .await?;
    let snapshot = state.live.snapshot();
    let feed = rows
        .into_iter()
        .map(|row| FeedItem::new(row, &snapshot))
        .collect();
    page(&DashboardPage {
        chrome,
        status,
        alarms,
        feed,
    })
}

/// GET /dashboard/status: the status panel alone, for htmx to refresh.
pub async fn status(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let chrome = Chrome::new(&state, &viewer, Section::Dashboard);
    page(&status_panel(&state, chrome.timezone).await?)
}

/// GET /dashboard/alarms: the alarms panel alone, for htmx to refresh.
pub async fn alarms(state: web::Data<AppState>, viewer: Viewer) -> Result<HttpResponse, PageError> {
    let chrome = Chrome::new(&state, &viewer, Section::Dashboard);
    page(&alarms_panel(&state, &chrome).await?)
}

#[derive(serde::Deserialize)]
pub struct AckForm {
    /// The alarms to acknowledge (one button posts one id; "all" posts every shown id).
    #[serde(default)]
    ids: String,
}

/// POST /alarms/acknowledge
pub async fn acknowledge(
    state: web::Data<AppState>,
    posted: super::kit::session::Posted<AckForm>,
) -> Result<HttpResponse, PageError> {
    posted.viewer.may_change_policy()?;
    let provenance = posted.viewer.provenance();
    let ids: Vec<i64> = posted
        .form
        .ids
        .split(',')
        .filter_map(|id| id.trim().parse().ok())
        .collect();
    if ids.is_empty() {
        return Err(PageError::BadForm("no alarm named".to_owned()));
    }
    let now = state.clock.now();
    let acknowledged = state
        .write(move |conn| {
            let ctx = crate::entities::ChangeContext {
                provenance: &provenance,
                now,
            };
            Ok(crate::readers::alarms::acknowledge(conn, &ids, &ctx)?)
        })
        .await?;
    let notice = match acknowledged {
        0 => super::kit::notice::Notice::unchanged_because(
            "those alarms were already acknowledged (or are too old to be).",
        ),
        1 => super::kit::notice::Notice::done("Alarm acknowledged"),
        n => super::kit::notice::Notice::done(format!("{n} alarms acknowledged")),
    };
    Ok(super::kit::notice::see_other_saying(
        &state,
        &posted.viewer,
        "/",
        notice,
    ))
}

/// How often a feed says it is alive, so proxies and browsers keep it open, and checks
/// that its session is still live even when the cache cannot say.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// A shorter feed tick than [`KEEPALIVE`] in milliseconds, 0 for none: set by tests, so
/// that a feed outliving its session is seen to end without waiting 15 s.
static TICK_OVERRIDE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// For tests: makes every live feed of this process tick (send a keepalive, check its
/// session) this often.
#[doc(hidden)]
pub fn set_feed_tick_for_tests(tick: Duration) {
    let ms = u64::try_from(tick.as_millis()).unwrap_or(u64::MAX);
    TICK_OVERRIDE_MS.store(ms, std::sync::atomic::Ordering::Relaxed);
}

fn feed_tick() -> Duration {
    match TICK_OVERRIDE_MS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => KEEPALIVE,
        ms => Duration::from_millis(ms),
    }
}

/// What a live feed holds while it is open: the event subscription, and the session it was
/// opened on, which it must not outlive.
struct FeedWatch {
    receiver: tokio::sync::broadcast::Receiver<Arc<Recorded>>,
    state: web::Data<AppState>,
    /// Becomes true when the appliance is stopping.
    stopping: tokio::sync::watch::Receiver<bool>,
    /// The session cookie the feed was opened with.
    secret: String,
    /// The next keepalive and full session check. A deadline rather than a wait restarted
    /// by each event, so that a steady trickle of events cannot put the check off.
    next_tick: tokio::time::Instant,
}

impl FeedWatch {
    /// Whether the session is still live. Before every event, from the sessions' cache
    /// alone (signed out, disabled or given a new password here, idle, past its lifetime);
    /// at each tick, from the database too when the cache cannot say: at most one read a
    /// tick, never one per event. A failed read counts as ended: the browser reconnects at
    /// once and is let in again only on a live session.
    async fn session_live(&self, ticked: bool) -> bool {
        use crate::identity::sessions::Standing;
        let now = self.state.clock.now();
        match self.state.sessions.standing(&self.secret, now) {
            Standing::Live => true,
            Standing::Ended => false,
            Standing::Unconfirmed if !ticked => true,
            Standing::Unconfirmed => {
                let state = self.state.clone();
                let secret = self.secret.clone();
                self.state
                    .read(move |conn| Ok(state.sessions.still_live(conn, &secret, now)?))
                    .await
                    .unwrap_or(false)
            }
        }
    }
}

/// GET /live/feed: each new event as a rendered feed line, over server-sent events, for as
/// long as the viewer's session lasts.
pub async fn feed(
    state: web::Data<AppState>,
    viewer: Viewer,
    req: actix_web::HttpRequest,
) -> HttpResponse {
    let tz = Chrome::new(&state, &viewer, Section::Dashboard).timezone;
    let secret = req
        .cookie(super::kit::session::SESSION_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    let watch = FeedWatch {
        receiver: state.events.watch(),
        stopping: state.stopping.subscribe(),
        state: state.clone(),
        secret,
        next_tick: tokio::time::Instant::now() + feed_tick(),
    };
    let body = stream::unfold(watch, move |mut watch| async move {
        // The appliance is stopping: the feed ends (the browser reconnects to whichever
        // appliance answers next) instead of holding the stop.
        let received = tokio::select! {
            received = tokio::time::timeout_at(watch.next_tick, watch.receiver.recv()) => received,
            _ = watch.stopping.wait_for(|stopping| *stopping) => return None,
        };
        let ticked = received.is_err();
        if ticked {
            watch.next_tick = tokio::time::Instant::now() + feed_tick();
        }
        // Before anything is sent: once the session is known to have ended, not one more
        // event.
        if !watch.session_live(ticked).await {
            return None;
        }
        let frame = match received {
            Ok(Ok(recorded)) => {
                let item = FeedItem::new(recorded, &watch.state.live.snapshot());
                let html = FeedItemFragment {
                    item: &item,
                    chrome_tz: tz,
                }
                .render()
                .unwrap_or_default();
                // One line of data per frame: SSE ends a field at a newline.
                let html = html.replace(['\n', '\r'], " ");
                format!("id: {}\nevent: feed\ndata: {html}\n\n", item.id())
            }
            Ok(Err(RecvError::Lagged(missed))) => {
                format!("event: lagged\ndata: {missed}\n\n")
            }
            Ok(Err(RecvError::Closed)) => return None,
            Err(_) => ": keepalive\n\n".to_owned(),
        };
        Some((Ok::<_, actix_web::Error>(web::Bytes::from(frame)), watch))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body)
}
