//! The anomaly score: a pure function of the baselines, the context, the short-term state
//! and one swipe, like `decide` (no I/O; the swipe's own time is the clock).
//!
//! Each feature estimates how much more likely the swipe is under "something is wrong"
//! than under the person's routine, as a log-likelihood ratio in nats (its *evidence*),
//! from counts in the baselines with priors (person ← peer group ← everyone). Evidence
//! adds up across features (they are treated as independent), and the total is turned
//! into a probability with a prior of one incident in `PRIOR_ODDS` swipes:
//! `value = 100 / (1 + PRIOR_ODDS · e^(−evidence))`. So 50 means the evidence makes an
//! incident as likely as not; a swipe with no evidence scores 0. docs/risk.md explains it.

use chrono::TimeDelta;
use serde::Serialize;

use super::baselines::{
    Baselines, GroupProfile, HOURS_OF_WEEK, Place, REENTRY_WINDOW, Route, hour_of_week, route,
};
use super::context::ScoringContext;
use super::observation::{CardKey, Observation, Outcome};
use super::recent::Recent;
use crate::policy::DenyCode;
use crate::policy::model::Direction;

/// The prior odds against an incident: one swipe in this many.
pub const PRIOR_ODDS: f64 = 1_000.0;

/// Reasons below this much evidence are not named.
pub const MIN_REASON_EVIDENCE: f32 = 0.5;

/// At most this many reasons are kept with a score.
pub const TOP_REASONS: usize = 3;

/// How long a status change makes a swipe suspicious.
pub const STATUS_CHANGE_DAYS: i64 = 14;

/// Windows of the short-term features.
pub const DENIAL_WINDOW: TimeDelta = TimeDelta::minutes(10);
pub const READER_WINDOW: TimeDelta = TimeDelta::minutes(2);
pub const UNKNOWN_WINDOW: TimeDelta = TimeDelta::hours(1);

/// Transfers seen fewer times than this are judged by the defaults below.
const MIN_TRANSFERS: u32 = 20;
const DEFAULT_SITE_TRANSFER_S: i64 = 600;
const DEFAULT_ZONE_TRANSFER_S: i64 = 8;
/// Within a site, the learned fastest transfer is taken as at most this: routine gaps
/// between swipes include time spent in the room, not just the walk.
const MAX_ZONE_TRANSFER_S: i64 = 60;

/// Pseudo-counts: how many swipes' worth the wider baseline weighs in a narrower one.
const PERSON_PRIOR: f64 = 10.0;
const GROUP_PRIOR: f64 = 30.0;
const DOOR_PRIOR: f64 = 20.0;
const RATE_PRIOR: f64 = 20.0;

/// What a reason is about: a stable code for programs, with words for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    OffHours,
    FirstDoorUse,
    DoorPeersNeverUse,
    ReentryWithoutExit,
    ImpossibleTravel,
    TwoPlacesAtOnce,
    DenialBurst,
    UnknownCardRepeated,
    AfterStatusChange,
    AfterDormancy,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 10] = [
        ReasonCode::OffHours,
        ReasonCode::FirstDoorUse,
        ReasonCode::DoorPeersNeverUse,
        ReasonCode::ReentryWithoutExit,
        ReasonCode::ImpossibleTravel,
        ReasonCode::TwoPlacesAtOnce,
        ReasonCode::DenialBurst,
        ReasonCode::UnknownCardRepeated,
        ReasonCode::AfterStatusChange,
        ReasonCode::AfterDormancy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::OffHours => "off_hours",
            ReasonCode::FirstDoorUse => "first_door_use",
            ReasonCode::DoorPeersNeverUse => "door_peers_never_use",
            ReasonCode::ReentryWithoutExit => "reentry_without_exit",
            ReasonCode::ImpossibleTravel => "impossible_travel",
            ReasonCode::TwoPlacesAtOnce => "two_places_at_once",
            ReasonCode::DenialBurst => "denial_burst",
            ReasonCode::UnknownCardRepeated => "unknown_card_repeated",
            ReasonCode::AfterStatusChange => "after_status_change",
            ReasonCode::AfterDormancy => "after_dormancy",
        }
    }
}

/// One contributing feature: its code, its evidence (nats) and a sentence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    pub code: ReasonCode,
    pub evidence: f32,
    pub words: String,
}

/// A swipe's score: 0 (routine) to 100, the total evidence behind it, and its top reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Score {
    pub value: u8,
    pub evidence: f32,
    pub reasons: Vec<Reason>,
}

impl Score {
    /// The reasons as stored in an event's `risk_reasons` column.
    pub fn reasons_json(&self) -> String {
        serde_json::to_string(&self.reasons).unwrap_or_else(|_| "[]".to_owned())
    }
}

/// Each feature's evidence, before the top ones are put into words: what the evaluation
/// and the Isolation Forest reference read as the feature vector.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Features {
    pub evidence: [f32; 10],
    facts: [Fact; 10],
}

/// The numbers a reason's words cite.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Fact {
    a: f64,
    b: f64,
}

impl Features {
    fn set(&mut self, code: ReasonCode, evidence: f64, a: f64, b: f64) {
        let i = code as usize;
        let evidence = evidence as f32;
        if evidence > self.evidence[i] {
            self.evidence[i] = evidence;
            self.facts[i] = Fact { a, b };
        }
    }

    pub fn total(&self) -> f32 {
        self.evidence.iter().sum()
    }
}

/// Scores one swipe. `recent` is the state before it (`Recent::record` takes it in after).
pub fn score(b: &Baselines, ctx: &ScoringContext, recent: &Recent, o: &Observation) -> Score {
    let f = features(b, ctx, recent, o);
    let evidence = f.total();
    let value = (100.0 / (1.0 + PRIOR_ODDS * (-f64::from(evidence)).exp())).round() as u8;
    let mut order: Vec<usize> = (0..f.evidence.len())
        .filter(|&i| f.evidence[i] >= MIN_REASON_EVIDENCE)
        .collect();
    order.sort_by(|&x, &y| f.evidence[y].total_cmp(&f.evidence[x]));
    order.truncate(TOP_REASONS);
    let reasons = order
        .into_iter()
        .map(|i| {
            let code = ReasonCode::ALL[i];
            Reason {
                code,
                evidence: (f.evidence[i] * 100.0).round() / 100.0,
                words: words(code, f.facts[i]),
            }
        })
        .collect();
    Score {
        value,
        evidence,
        reasons,
    }
}

fn ln_ratio(a: f64, b: f64, cap: f64) -> f64 {
    if b <= 0.0 {
        return cap;
    }
    (a / b).ln().clamp(0.0, cap)
}

/// Every feature's evidence for one swipe.
pub fn features(b: &Baselines, ctx: &ScoringContext, recent: &Recent, o: &Observation) -> Features {
    let mut f = Features::default();
    let person_ctx = o.person.and_then(|p| ctx.person(p));
    let profile = o.person.and_then(|p| b.person(p));
    let group = person_ctx.and_then(|pc| b.group(&pc.peer_group));
    let global = b.global();
    let at_s = o.at.timestamp();

    // Off-hours: how likely this hour of the week is for this person (in this zone when
    // they have a habit there), against a time picked at random.
    if o.person.is_some() {
        let bin = hour_of_week(o.at, ctx.timezone(o.site));
        let zone = o
            .zone
            .filter(|z| profile.is_some_and(|p| p.zone_total(Some(*z)) >= 20));
        let smooth = |count: &dyn Fn(usize) -> f64| {
            let at =
                |d: isize| count((bin as isize + d).rem_euclid(HOURS_OF_WEEK as isize) as usize);
            at(0) + 0.5 * (at(-1) + at(1)) + 0.25 * (at(-24) + at(24))
        };
        const MASS: f64 = 2.5;
        let gz = zone.filter(|z| global.zone_total(Some(*z)) >= 50);
        let p_global = (smooth(&|i| global.hour_count(gz, i) as f64) + MASS)
            / (MASS * (global.zone_total(gz) as f64 + HOURS_OF_WEEK as f64));
        let p_group = match group {
            Some(g) => {
                let z = zone.filter(|z| g.zone_total(Some(*z)) >= 50);
                (smooth(&|i| g.hour_count(z, i) as f64) + MASS * GROUP_PRIOR * p_global)
                    / (MASS * (g.zone_total(z) as f64 + GROUP_PRIOR))
            }
            None => p_global,
        };
        let (p_self, n) = match profile {
            Some(p) => {
                let n = f64::from(p.zone_total(zone));
                (
                    (smooth(&|i| f64::from(p.hour_count(zone, i))) + MASS * PERSON_PRIOR * p_group)
                        / (MASS * (n + PERSON_PRIOR)),
                    n,
                )
            }
            None => (p_group, 0.0),
        };
        let uniform = 1.0 / HOURS_OF_WEEK as f64;
        f.set(
            ReasonCode::OffHours,
            ln_ratio(uniform, p_self, 6.0),
            p_self * n,
            n,
        );
    }

    if let Some(door) = o.door {
        let own = profile.and_then(|p| p.door(door)).map_or(0, |d| d.count);
        // First use: how often this person's swipes find a door new to them.
        if let Some(p) = profile
            && own == 0
        {
            let k = p.doors().len() as f64;
            let p_new = (k + 1.0) / (f64::from(p.granted) + k + 2.0);
            f.set(
                ReasonCode::FirstDoorUse,
                ln_ratio(0.3, p_new, 4.0),
                k,
                f64::from(p.granted),
            );
        }
        // A door the peers (or, without peers, everyone) hardly use, and not a habit of
        // this person's own.
        if own <= 2 {
            let doors = global.doors_used().max(1) as f64;
            let p_everyone =
                (global.door_count(door) as f64 + 1.0) / (global.granted as f64 + doors + 1.0);
            let p_peers = match group {
                Some(g) => {
                    (g.door_count(door) as f64 + DOOR_PRIOR * p_everyone)
                        / (g.granted as f64 + DOOR_PRIOR)
                }
                None => p_everyone,
            };
            let weight = if own == 0 { 1.0 } else { 0.5 };
            let peer_uses = group.map_or(global.door_count(door), |g| g.door_count(door));
            f.set(
                ReasonCode::DoorPeersNeverUse,
                weight * ln_ratio(1.0 / doors, p_peers, 5.0),
                peer_uses as f64,
                group.map_or(0.0, |g| g.granted as f64),
            );
        }
    }

    if let Some(card) = o.card() {
        card_features(
            &mut f,
            b,
            ctx,
            recent,
            o,
            card,
            profile.map(|p| (p.swipes, p.denials)),
            global,
        );
    }

    // Use right after a status change, or by a person no longer active.
    if let Some(changed) = person_ctx.and_then(|pc| pc.status_changed_at) {
        let elapsed = o.at - changed;
        if elapsed >= TimeDelta::zero() && elapsed < TimeDelta::days(STATUS_CHANGE_DAYS) {
            let share = elapsed.num_seconds() as f64 / (STATUS_CHANGE_DAYS * 86_400) as f64;
            f.set(
                ReasonCode::AfterStatusChange,
                3.5 * (1.0 - share),
                elapsed.num_hours() as f64,
                0.0,
            );
        }
    }
    match o.deny {
        Some(DenyCode::Inactive) => f.set(ReasonCode::AfterStatusChange, 6.0, -1.0, 1.0),
        Some(DenyCode::Expired) => f.set(ReasonCode::AfterStatusChange, 2.0, -1.0, 2.0),
        _ => {}
    }

    // Dormancy: far longer since the last swipe than this person's longest gap so far.
    if let Some(p) = profile
        && p.swipes >= 10
        && let Some(last) = p.last()
    {
        let gap = (at_s - last.at) as f64;
        let threshold = (p.longest_gap as f64 * 1.5).max(21.0 * 86_400.0);
        if gap > threshold {
            f.set(
                ReasonCode::AfterDormancy,
                (3.5 + 2.5 * (gap / threshold).ln()).min(7.0),
                gap / 86_400.0,
                p.longest_gap as f64 / 86_400.0,
            );
        }
    }
    f
}

#[allow(clippy::too_many_arguments)]
fn card_features(
    f: &mut Features,
    b: &Baselines,
    ctx: &ScoringContext,
    recent: &Recent,
    o: &Observation,
    card: CardKey,
    own_rates: Option<(u32, u32)>,
    global: &GroupProfile,
) {
    let now_ms = o.at.timestamp_millis();
    let denied = o.outcome == Outcome::Denied;
    match card {
        CardKey::Unknown(_) => {
            let (before, _) = recent.card_swipes(card, o.at, UNKNOWN_WINDOW);
            let k = f64::from(before + 1);
            f.set(
                ReasonCode::UnknownCardRepeated,
                (1.0 + 2.5 * (k - 1.0)).min(8.0),
                k,
                0.0,
            );
        }
        CardKey::Known(_) => {
            // A burst of denials, against this person's own rate of denials.
            let (n, d) = recent.card_swipes(card, o.at, DENIAL_WINDOW);
            let (n, d) = (f64::from(n + 1), f64::from(d + u32::from(denied)));
            if denied && d >= 2.0 {
                let p_everyone = (global.denials as f64 + 1.0) / (global.swipes as f64 + 10.0);
                let p_deny = match own_rates {
                    Some((swipes, denials)) => {
                        (f64::from(denials) + RATE_PRIOR * p_everyone)
                            / (f64::from(swipes) + RATE_PRIOR)
                    }
                    None => p_everyone,
                }
                .max(0.01);
                let lambda = n * p_deny;
                let llr = d * (d / lambda).ln() - (d - lambda);
                f.set(ReasonCode::DenialBurst, llr.clamp(0.0, 8.0), d, 10.0);
            }
            // Two places at once: the card's last swipe elsewhere, too recently to have
            // walked (or travelled) here.
            if let Some(last) = recent.last_swipe(card) {
                let here = Place {
                    at: o.at.timestamp(),
                    site: o.site,
                    zone: o.zone,
                    door: o.door,
                };
                let there = Place {
                    at: last.at_ms / 1000,
                    site: last.site,
                    zone: last.zone,
                    door: last.door,
                };
                if let Some(r) = route(&there, &here) {
                    let gap_s = (now_ms - last.at_ms).max(0) as f64 / 1000.0;
                    let learned = b
                        .transfer(r)
                        .filter(|t| t.count >= MIN_TRANSFERS)
                        .and_then(|t| t.quantile(0.01));
                    let (code, fastest) = match r {
                        Route::Sites(..) => (
                            ReasonCode::ImpossibleTravel,
                            learned.unwrap_or(DEFAULT_SITE_TRANSFER_S).max(60),
                        ),
                        Route::Zones(..) => (
                            ReasonCode::TwoPlacesAtOnce,
                            learned
                                .unwrap_or(DEFAULT_ZONE_TRANSFER_S)
                                .clamp(2, MAX_ZONE_TRANSFER_S),
                        ),
                    };
                    let fastest = fastest as f64;
                    if gap_s < fastest {
                        f.set(code, 4.0 + 4.0 * (1.0 - gap_s / fastest), gap_s, fastest);
                    }
                }
            }
            // Re-entry with no exit in between, in a zone with exit readers, against this
            // person's habit of skipping the exit reader.
            if o.granted()
                && o.direction == Some(Direction::In)
                && let Some(zone) = o.zone
                && ctx.zone_has_exit(zone)
                && let Some((Direction::In, at)) = recent.last_direction(card, zone)
                && now_ms - at < REENTRY_WINDOW.num_milliseconds()
            {
                let p_everyone = (global.reentries as f64 + 1.0) / (global.entries as f64 + 20.0);
                let p_re = match o.person.and_then(|p| b.person(p)) {
                    Some(p) => {
                        (f64::from(p.reentries) + 10.0 * p_everyone) / (f64::from(p.entries) + 10.0)
                    }
                    None => p_everyone,
                };
                f.set(
                    ReasonCode::ReentryWithoutExit,
                    ln_ratio(0.5, p_re, 6.5),
                    (now_ms - at) as f64 / 60_000.0,
                    p_re,
                );
            }
        }
    }
    // Many different cards refused at one reader in a moment: someone trying cards.
    if denied {
        let others = recent.reader_denied_cards(o.reader, Some(card), o.at, READER_WINDOW);
        if others >= 2 {
            f.set(
                ReasonCode::DenialBurst,
                (1.5 * f64::from(others)).min(8.0),
                f64::from(others + 1),
                -2.0,
            );
        }
    }
}

fn words(code: ReasonCode, fact: Fact) -> String {
    let Fact { a, b } = fact;
    match code {
        ReasonCode::OffHours => format!(
            "unusual time for this person: about {a:.1} of their {b:.0} swipes here fall in this hour of the week"
        ),
        ReasonCode::FirstDoorUse => {
            format!("first use of this door (they have used {a:.0} doors in {b:.0} swipes)")
        }
        ReasonCode::DoorPeersNeverUse => {
            format!("a door their peers rarely use ({a:.0} of the peer group's {b:.0} swipes)")
        }
        ReasonCode::ReentryWithoutExit => {
            format!("entered again {a:.0} min after entering, with no exit in between")
        }
        ReasonCode::ImpossibleTravel => format!(
            "at another site {a:.0} s after the card was last used (the fastest routine trip takes {b:.0} s)"
        ),
        ReasonCode::TwoPlacesAtOnce => format!(
            "used at another door {a:.1} s after the last use elsewhere (the fastest routine walk takes {b:.0} s): a cloned card?"
        ),
        ReasonCode::DenialBurst if b < 0.0 => {
            format!("{a:.0} different cards refused at this reader within 2 minutes")
        }
        ReasonCode::DenialBurst => format!("{a:.0} refusals of this card within {b:.0} minutes"),
        ReasonCode::UnknownCardRepeated => {
            format!("an unknown card, tried {a:.0} times within the hour")
        }
        ReasonCode::AfterStatusChange if b == 1.0 => {
            "the card of a suspended or terminated person".to_owned()
        }
        ReasonCode::AfterStatusChange if b == 2.0 => "an expired card or person".to_owned(),
        ReasonCode::AfterStatusChange => {
            format!("{a:.0} hours after the person's status changed")
        }
        ReasonCode::AfterDormancy => {
            format!("first use in {a:.0} days (their longest gap before was {b:.0} days)")
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::risk::context::ContextBuilder;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn swipe(person: i64, door: i64, zone: i64, when: DateTime<Utc>) -> Observation {
        Observation {
            at: when,
            site: Some(1),
            zone: Some(zone),
            door: Some(door),
            reader: door as u64,
            direction: Some(Direction::In),
            person: Some(person),
            credential: Some(person * 10),
            unknown_key: None,
            outcome: Outcome::Granted,
            deny: None,
        }
    }

    /// Four weeks of a day worker (person 1, 08:00 UTC) and a night worker (person 2,
    /// 02:00 UTC), each at their own door, each with two peers of the same routine.
    fn baselines() -> (Baselines, ScoringContext) {
        let mut b = ContextBuilder::default();
        b.site(1, chrono_tz::Tz::UTC);
        for id in [1, 3, 4] {
            b.person(id, "Office", "Clerk");
        }
        for id in [2, 5, 6] {
            b.person(id, "Plant", "Operator");
        }
        let ctx = b.build();
        let mut base = Baselines::default();
        let start = at("2026-11-02T00:00:00Z");
        for day in 0..28 {
            for (person, hour, door) in [
                (1, 8, 10),
                (3, 8, 10),
                (4, 8, 10),
                (2, 2, 20),
                (5, 2, 20),
                (6, 2, 20),
            ] {
                let when = start + TimeDelta::days(day) + TimeDelta::hours(hour);
                base.observe(&ctx, &swipe(person, door, door * 10, when));
            }
        }
        (base, ctx)
    }

    #[test]
    fn the_same_hour_is_routine_for_the_night_shift_and_off_hours_for_the_day_worker() {
        let (base, ctx) = baselines();
        let recent = Recent::default();
        let night = at("2026-12-01T02:05:00Z");
        let own = score(&base, &ctx, &recent, &swipe(2, 20, 200, night));
        assert_eq!(own.value, 0, "{own:?}");
        assert!(own.reasons.is_empty(), "{own:?}");
        let day_worker = score(&base, &ctx, &recent, &swipe(1, 10, 100, night));
        assert_eq!(
            day_worker.reasons[0].code,
            ReasonCode::OffHours,
            "{day_worker:?}"
        );
        assert!(day_worker.evidence > 2.5, "{day_worker:?}");
        // At the plant's door too: the door is new to them and their peers never use it.
        let elsewhere = score(&base, &ctx, &recent, &swipe(1, 20, 200, night));
        let codes: Vec<ReasonCode> = elsewhere.reasons.iter().map(|r| r.code).collect();
        assert!(codes.contains(&ReasonCode::FirstDoorUse), "{elsewhere:?}");
        assert!(
            codes.contains(&ReasonCode::DoorPeersNeverUse),
            "{elsewhere:?}"
        );
        assert!(elsewhere.evidence > day_worker.evidence, "{elsewhere:?}");
        assert!(elsewhere.reasons.len() <= TOP_REASONS);
    }

    #[test]
    fn one_card_at_two_doors_seconds_apart_is_named_a_clone() {
        let (base, ctx) = baselines();
        let mut recent = Recent::default();
        let first = swipe(1, 10, 100, at("2026-12-01T08:00:00Z"));
        assert_eq!(score(&base, &ctx, &recent, &first).value, 0);
        recent.record(&ctx, &first);
        let second = swipe(1, 11, 110, at("2026-12-01T08:00:02Z"));
        let s = score(&base, &ctx, &recent, &second);
        assert!(
            s.reasons
                .iter()
                .any(|r| r.code == ReasonCode::TwoPlacesAtOnce),
            "{s:?}"
        );
        let json: serde_json::Value = serde_json::from_str(&s.reasons_json()).unwrap();
        assert!(
            json[0]["words"].as_str().unwrap().contains("s after"),
            "{json}"
        );
    }
}
