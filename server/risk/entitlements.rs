//! The entitlement review: which grants are unused, rare among peers, redundant, dormant,
//! over-broad or toxic, each finding scored with its evidence and a suggested fix.
//! `analyse` is pure (policy rows, usage aggregates and the clock in, findings out);
//! `review` reads those through `store::history` in bounded chunks and calls it.
//!
//! Score = 100 × sensitivity × unusedness × rarity, each factor in 0..=1 and shown with
//! the finding (docs/risk.md, "Entitlement findings", says what each means per kind).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::EntitlementReviewConfig;
use crate::store::DbConnection;
use crate::store::history::{self, HistoryError, Holdings, ReadScope};

/// People whose usage one chunk reads.
const PEOPLE_PER_CHUNK: usize = 500;

/// The most door names an evidence list carries (the count is always complete).
const LISTED_DOORS: usize = 10;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An entitlement none of whose doors the person used in the review window.
    UnusedEntitlement,
    /// An entitlement few of the person's peers (department and title) hold.
    PeerOutlier,
    /// An entitlement whose every door and schedule another of the person's covers.
    RedundantGrant,
    /// An active card not used in the review window.
    DormantCredential,
    /// A level most of whose doors its holders do not use.
    OverbroadLevel,
    /// A person who can open every door of an admin-defined toxic combination.
    ToxicCombination,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::UnusedEntitlement => "unused_entitlement",
            FindingKind::PeerOutlier => "peer_outlier",
            FindingKind::RedundantGrant => "redundant_grant",
            FindingKind::DormantCredential => "dormant_credential",
            FindingKind::OverbroadLevel => "overbroad_level",
            FindingKind::ToxicCombination => "toxic_combination",
        }
    }
}

/// What to do about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Take the entitlement away.
    Revoke,
    /// Keep it, but let it end (just-in-time access) and review it then.
    AddExpiry,
    /// Replace the level with a narrower one of the doors its holders use.
    ReplaceLevel,
    /// Revoke the card.
    RevokeCredential,
    /// An admin decides which of the grants goes.
    Review,
}

#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Remediation {
    pub action: Action,
    /// The suggestion in words, naming what to change.
    pub text: String,
}

/// The three factors of the score, each in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Factors {
    /// The most sensitive door concerned: low 0.4, normal 0.6, high 0.8, critical 1.0.
    pub sensitivity: f64,
    /// How unused the access is (kind by kind, docs/risk.md).
    pub unusedness: f64,
    /// How unusual it is among the person's peers (1 when there is no peer group).
    pub rarity: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PersonRef {
    pub id: i64,
    pub employee_id: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NamedRef {
    pub id: i64,
    pub name: String,
}

/// The numbers a finding rests on; what does not apply to its kind is left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Evidence {
    /// Granted swipes at the doors concerned in the review window (the last `window_days`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses_in_window: Option<i64>,
    /// Granted swipes at them in all the history kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses_total: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_use: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted_at: Option<DateTime<Utc>>,
    /// Days since the last use, or since the grant (the card's creation) if never used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_days: Option<i64>,
    /// `department / title`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_group: Option<String>,
    /// The person's peers (not counting them) and the share of them holding the level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_share: Option<f64>,
    /// Levels whose doors cover this one's (redundant grants) or that grant the
    /// combination's doors (toxic combinations).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// An over-broad level's doors, those its holders used, and its holders.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doors: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub doors_used: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub holders: Option<usize>,
    /// Door names (at most ten): unused ones of an over-broad level, a combination's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub door_names: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub combination: Option<String>,
}

/// One finding of the review.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Finding {
    pub kind: FindingKind,
    /// 0 to 100: 100 × sensitivity × unusedness × rarity.
    pub score: f64,
    pub factors: Factors,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub person: Option<PersonRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<NamedRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entitlement_id: Option<i64>,
    /// The card of a dormant-credential finding (its UID or FACILITY:NUMBER).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<NamedRef>,
    pub evidence: Evidence,
    pub remediation: Remediation,
}

/// The review's settings (from `[entitlement_review]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub unused_days: u32,
    /// A share below this (0..1) makes a peer outlier.
    pub peer_share_below: f64,
    pub min_peers: usize,
    /// Name and door names of each toxic combination.
    pub toxic: Vec<(String, Vec<String>)>,
}

impl Settings {
    pub fn from_config(config: &EntitlementReviewConfig) -> Settings {
        Settings {
            unused_days: config.unused_days,
            peer_share_below: f64::from(config.peer_share_percent) / 100.0,
            min_peers: config.min_peers as usize,
            toxic: config
                .toxic
                .iter()
                .map(|t| {
                    (
                        t.name.trim().to_owned(),
                        t.doors.iter().map(|d| d.trim().to_owned()).collect(),
                    )
                })
                .collect(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::from_config(&EntitlementReviewConfig::default())
    }
}

/// Granted swipes of one person at one door, or with one card.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Use {
    pub uses: i64,
    pub uses_in_window: i64,
    pub last: Option<DateTime<Utc>>,
}

impl Use {
    fn add(&mut self, other: &Use) {
        self.uses += other.uses;
        self.uses_in_window += other.uses_in_window;
        self.last = self.last.max(other.last);
    }
}

/// The usage aggregates the review reads: per (person, door) and per credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub doors: HashMap<(i64, i64), Use>,
    pub credentials: HashMap<i64, Use>,
}

/// The review's answer: findings, highest score first, and what it could not judge.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct Review {
    pub findings: Vec<Finding>,
    /// Settings that name nothing (a toxic combination's unknown door), in words.
    pub notes: Vec<String>,
    /// The review window's start: uses since then count as recent.
    pub window_from: Option<DateTime<Utc>>,
}

/// Reads who holds what and how it was used (usage in chunks of people, each a short
/// read), then judges it at `now`.
pub fn review(
    conn: &mut DbConnection,
    scope: ReadScope,
    settings: &Settings,
    now: DateTime<Utc>,
) -> Result<Review, HistoryError> {
    let holdings = history::holdings(conn, scope)?;
    let since = window_start(settings, now);
    let mut usage = Usage::default();
    let mut after = None;
    loop {
        let chunk = history::usage(conn, scope, since, after, PEOPLE_PER_CHUNK)?;
        for d in chunk.doors {
            usage.doors.insert(
                (d.person_id, d.door_id),
                Use {
                    uses: d.uses,
                    uses_in_window: d.uses_since,
                    last: Some(d.last),
                },
            );
        }
        for c in chunk.credentials {
            usage.credentials.insert(
                c.credential_id,
                Use {
                    uses: c.uses,
                    uses_in_window: c.uses_since,
                    last: Some(c.last),
                },
            );
        }
        match chunk.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    Ok(analyse(&holdings, &usage, settings, now))
}

fn window_start(settings: &Settings, now: DateTime<Utc>) -> DateTime<Utc> {
    now - TimeDelta::days(i64::from(settings.unused_days))
}

fn sensitivity_factor(sensitivity: &str) -> f64 {
    match sensitivity {
        "low" => 0.4,
        "high" => 0.8,
        "critical" => 1.0,
        _ => 0.6,
    }
}

/// Idle time as a factor: 0.5 at the window's length, rising to 1 at twice it.
fn idleness(idle: TimeDelta, settings: &Settings) -> f64 {
    let window = f64::from(settings.unused_days.max(1));
    (idle.num_days() as f64 / (2.0 * window)).clamp(0.5, 1.0)
}

fn round(x: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (x * scale).round() / scale
}

fn finding(
    kind: FindingKind,
    factors: Factors,
    evidence: Evidence,
    remediation: Remediation,
) -> Finding {
    Finding {
        kind,
        score: round(
            100.0 * factors.sensitivity * factors.unusedness * factors.rarity,
            1,
        ),
        factors: Factors {
            sensitivity: round(factors.sensitivity, 2),
            unusedness: round(factors.unusedness, 2),
            rarity: round(factors.rarity, 2),
        },
        person: None,
        level: None,
        entitlement_id: None,
        credential: None,
        evidence,
        remediation,
    }
}

/// The policy, indexed for the review.
struct Index<'h> {
    people: HashMap<i64, &'h history::HeldPerson>,
    level_names: HashMap<i64, &'h str>,
    doors: HashMap<i64, &'h history::HeldDoor>,
    /// Each level's doors (zones flattened), each with the schedules it is open on.
    level_doors: HashMap<i64, BTreeMap<i64, BTreeSet<i64>>>,
    /// The entitlements in force of active people, by person.
    held: BTreeMap<i64, Vec<&'h history::HeldEntitlement>>,
    /// Active people by peer group (department, title).
    groups: HashMap<(&'h str, &'h str), Vec<i64>>,
}

impl<'h> Index<'h> {
    fn of(h: &'h Holdings, now: DateTime<Utc>) -> Index<'h> {
        let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
        for (zone, parent) in &h.zones {
            if let Some(parent) = parent {
                children.entry(*parent).or_default().push(*zone);
            }
        }
        let mut doors_of_zone: HashMap<i64, Vec<i64>> = HashMap::new();
        for d in &h.doors {
            doors_of_zone.entry(d.zone_id).or_default().push(d.id);
        }
        let mut level_doors: HashMap<i64, BTreeMap<i64, BTreeSet<i64>>> = HashMap::new();
        for item in &h.level_items {
            let doors = level_doors.entry(item.level_id).or_default();
            if let Some(door) = item.door_id {
                doors.entry(door).or_default().insert(item.schedule_id);
            }
            if let Some(zone) = item.zone_id {
                let mut pending = vec![zone];
                let mut seen = HashSet::new();
                while let Some(zone) = pending.pop() {
                    if !seen.insert(zone) {
                        continue;
                    }
                    for door in doors_of_zone.get(&zone).into_iter().flatten() {
                        doors.entry(*door).or_default().insert(item.schedule_id);
                    }
                    pending.extend(children.get(&zone).into_iter().flatten());
                }
            }
        }
        let people: HashMap<i64, &history::HeldPerson> =
            h.people.iter().map(|p| (p.id, p)).collect();
        let active = |id: i64| people.get(&id).is_some_and(|p| p.status == "active");
        let mut held: BTreeMap<i64, Vec<&history::HeldEntitlement>> = BTreeMap::new();
        for e in &h.entitlements {
            if active(e.person_id) && e.valid_until.is_none_or(|until| until > now) {
                held.entry(e.person_id).or_default().push(e);
            }
        }
        let mut groups: HashMap<(&str, &str), Vec<i64>> = HashMap::new();
        for p in &h.people {
            if p.status == "active" && !p.department.trim().is_empty() {
                groups
                    .entry((p.department.trim(), p.title.trim()))
                    .or_default()
                    .push(p.id);
            }
        }
        Index {
            people,
            level_names: h.levels.iter().map(|(id, n)| (*id, n.as_str())).collect(),
            doors: h.doors.iter().map(|d| (d.id, d)).collect(),
            level_doors,
            held,
            groups,
        }
    }

    fn person(&self, id: i64) -> Option<PersonRef> {
        self.people.get(&id).map(|p| PersonRef {
            id,
            employee_id: p.employee_id.clone(),
            name: p.name.clone(),
        })
    }

    fn level(&self, id: i64) -> NamedRef {
        NamedRef {
            id,
            name: self.level_name(id),
        }
    }

    fn level_name(&self, id: i64) -> String {
        self.level_names
            .get(&id)
            .map_or_else(|| format!("level {id}"), |n| (*n).to_owned())
    }

    fn door_name(&self, id: i64) -> String {
        self.doors
            .get(&id)
            .map_or_else(|| format!("door {id}"), |d| d.name.clone())
    }

    fn sensitivity<'a>(&self, doors: impl IntoIterator<Item = &'a i64>) -> f64 {
        doors
            .into_iter()
            .filter_map(|d| self.doors.get(d))
            .map(|d| sensitivity_factor(&d.sensitivity))
            .fold(0.4, f64::max)
    }

    fn doors_of(&self, level: i64) -> Vec<i64> {
        self.level_doors
            .get(&level)
            .map(|d| d.keys().copied().collect())
            .unwrap_or_default()
    }

    /// The person's use of a level's doors.
    fn use_of(&self, usage: &Usage, person: i64, level: i64) -> Use {
        let mut total = Use::default();
        for door in self.doors_of(level) {
            if let Some(u) = usage.doors.get(&(person, door)) {
                total.add(u);
            }
        }
        total
    }

    /// The person's peers (same department and title, active, not them) and the share of
    /// them holding `level`; None when they have fewer than `min_peers`.
    fn peer_share(
        &self,
        person: i64,
        level: i64,
        settings: &Settings,
    ) -> Option<(String, usize, f64)> {
        let p = self.people.get(&person)?;
        let group = self.groups.get(&(p.department.trim(), p.title.trim()))?;
        let peers: Vec<i64> = group.iter().copied().filter(|q| *q != person).collect();
        if peers.len() < settings.min_peers.max(1) {
            return None;
        }
        let holding = peers
            .iter()
            .filter(|q| {
                self.held
                    .get(q)
                    .is_some_and(|es| es.iter().any(|e| e.level_id == level))
            })
            .count();
        let label = if p.title.trim().is_empty() {
            p.department.trim().to_owned()
        } else {
            format!("{} / {}", p.department.trim(), p.title.trim())
        };
        Some((label, peers.len(), holding as f64 / peers.len() as f64))
    }
}

/// Judges every active person's entitlements and cards, and every level, at `now`.
pub fn analyse(h: &Holdings, usage: &Usage, settings: &Settings, now: DateTime<Utc>) -> Review {
    let index = Index::of(h, now);
    let since = window_start(settings, now);
    let mut findings = Vec::new();
    unused_and_rare(&index, usage, settings, now, since, &mut findings);
    redundant(&index, &mut findings);
    dormant(h, &index, usage, settings, now, since, &mut findings);
    overbroad(&index, usage, since, &mut findings);
    let notes = toxic(&index, usage, settings, &mut findings);
    findings.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.kind.cmp(&b.kind))
            .then(
                a.person
                    .as_ref()
                    .map(|p| p.id)
                    .cmp(&b.person.as_ref().map(|p| p.id)),
            )
            .then(
                a.level
                    .as_ref()
                    .map(|l| l.id)
                    .cmp(&b.level.as_ref().map(|l| l.id)),
            )
    });
    Review {
        findings,
        notes,
        window_from: Some(since),
    }
}

/// Unused entitlements and peer outliers, entitlement by entitlement.
fn unused_and_rare(
    index: &Index<'_>,
    usage: &Usage,
    settings: &Settings,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    findings: &mut Vec<Finding>,
) {
    let days = settings.unused_days;
    for (person, held) in &index.held {
        for e in held {
            let doors = index.doors_of(e.level_id);
            let used = index.use_of(usage, *person, e.level_id);
            let peers = index.peer_share(*person, e.level_id, settings);
            let sensitivity = index.sensitivity(&doors);
            let mut evidence = Evidence {
                uses_in_window: Some(used.uses_in_window),
                uses_total: Some(used.uses),
                last_use: used.last,
                granted_at: Some(e.granted_at),
                ..Evidence::default()
            };
            if let Some((group, n, share)) = &peers {
                evidence.peer_group = Some(group.clone());
                evidence.peers = Some(*n);
                evidence.peer_share = Some(round(*share, 3));
            }
            let level = index.level_name(e.level_id);
            let held_long_enough = e.granted_at <= since;
            let unused = held_long_enough && used.uses_in_window == 0;
            if unused {
                // Idle since the last use or the grant, whichever is later: a use before
                // the grant (through another level) is no use of this one.
                let idle_from = used.last.map_or(e.granted_at, |l| l.max(e.granted_at));
                let idle = now - idle_from;
                let rarity = peers
                    .as_ref()
                    .map_or(1.0, |(_, _, share)| 0.5 + 0.5 * (1.0 - share));
                let mut f = finding(
                    FindingKind::UnusedEntitlement,
                    Factors {
                        sensitivity,
                        unusedness: idleness(idle, settings),
                        rarity,
                    },
                    Evidence {
                        idle_days: Some(idle.num_days()),
                        ..evidence.clone()
                    },
                    Remediation {
                        action: Action::Revoke,
                        text: format!("revoke '{level}': none of its doors used in {days} days"),
                    },
                );
                f.person = index.person(*person);
                f.level = Some(index.level(e.level_id));
                f.entitlement_id = Some(e.id);
                findings.push(f);
            }
            if let Some((group, _, share)) = &peers
                && *share < settings.peer_share_below
            {
                let (unusedness, remediation) = if used.uses_in_window == 0 {
                    (
                        1.0,
                        Remediation {
                            action: Action::Revoke,
                            text: format!(
                                "revoke '{level}': few of the {group} peers hold it and it was \
                                 not used in {days} days"
                            ),
                        },
                    )
                } else {
                    (
                        0.4,
                        Remediation {
                            action: Action::AddExpiry,
                            text: format!(
                                "give '{level}' an expiry and review it then: few of the {group} \
                                 peers hold it, though it is used"
                            ),
                        },
                    )
                };
                let mut f = finding(
                    FindingKind::PeerOutlier,
                    Factors {
                        sensitivity,
                        unusedness,
                        rarity: 1.0 - share,
                    },
                    evidence,
                    remediation,
                );
                f.person = index.person(*person);
                f.level = Some(index.level(e.level_id));
                f.entitlement_id = Some(e.id);
                findings.push(f);
            }
        }
    }
}

/// Entitlements that add nothing: every (door, schedule) of the level is covered by
/// another of the person's levels that lasts at least as long. Broader levels are kept
/// first, so of two levels that cover each other exactly the later grant is reported.
fn redundant(index: &Index<'_>, findings: &mut Vec<Finding>) {
    let empty = BTreeMap::new();
    for (person, held) in &index.held {
        if held.len() < 2 {
            continue;
        }
        let mut order: Vec<&history::HeldEntitlement> = held.clone();
        order.sort_by_key(|e| {
            let doors = index.level_doors.get(&e.level_id).map_or(0, BTreeMap::len);
            (std::cmp::Reverse(doors), e.granted_at, e.id)
        });
        let mut kept: Vec<&history::HeldEntitlement> = Vec::new();
        for e in order {
            let doors = index.level_doors.get(&e.level_id).unwrap_or(&empty);
            let lasts = |other: &history::HeldEntitlement| match (other.valid_until, e.valid_until)
            {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(o), Some(mine)) => o >= mine,
            };
            let mut covering: BTreeSet<i64> = BTreeSet::new();
            let covered = !doors.is_empty()
                && doors.iter().all(|(door, schedules)| {
                    schedules.iter().all(|schedule| {
                        let by = kept.iter().find(|k| {
                            lasts(k)
                                && index
                                    .level_doors
                                    .get(&k.level_id)
                                    .and_then(|d| d.get(door))
                                    .is_some_and(|s| s.contains(schedule))
                        });
                        if let Some(k) = by {
                            covering.insert(k.level_id);
                        }
                        by.is_some()
                    })
                });
            if !covered {
                kept.push(e);
                continue;
            }
            let names: Vec<String> = covering.iter().map(|l| index.level_name(*l)).collect();
            let level = index.level_name(e.level_id);
            let door_ids: Vec<i64> = doors.keys().copied().collect();
            let mut f = finding(
                FindingKind::RedundantGrant,
                Factors {
                    sensitivity: index.sensitivity(&door_ids),
                    unusedness: 1.0,
                    rarity: 0.5,
                },
                Evidence {
                    granted_at: Some(e.granted_at),
                    doors: Some(doors.len()),
                    levels: names.clone(),
                    ..Evidence::default()
                },
                Remediation {
                    action: Action::Revoke,
                    text: format!(
                        "revoke '{level}': {} already grants every door of it on the same schedule",
                        names
                            .iter()
                            .map(|n| format!("'{n}'"))
                            .collect::<Vec<_>>()
                            .join(" and ")
                    ),
                },
            );
            f.person = index.person(*person);
            f.level = Some(index.level(e.level_id));
            f.entitlement_id = Some(e.id);
            findings.push(f);
        }
    }
}

/// Active cards of active people, in force, with no use in the window: idle since their
/// last use, or since they were registered if never used (a card registered within the
/// window is not judged yet).
#[allow(clippy::too_many_arguments)]
fn dormant(
    h: &Holdings,
    index: &Index<'_>,
    usage: &Usage,
    settings: &Settings,
    now: DateTime<Utc>,
    since: DateTime<Utc>,
    findings: &mut Vec<Finding>,
) {
    for c in &h.credentials {
        let active_person = index
            .people
            .get(&c.person_id)
            .is_some_and(|p| p.status == "active");
        if !active_person || c.status != "active" || c.valid_until.is_some_and(|u| u <= now) {
            continue;
        }
        let used = usage.credentials.get(&c.id).copied().unwrap_or_default();
        let idle_from = used.last.unwrap_or(c.created_at);
        if used.uses_in_window > 0 || idle_from > since {
            continue;
        }
        let idle = now - idle_from;
        let doors: BTreeSet<i64> = index
            .held
            .get(&c.person_id)
            .into_iter()
            .flatten()
            .flat_map(|e| index.doors_of(e.level_id))
            .collect();
        let mut f = finding(
            FindingKind::DormantCredential,
            Factors {
                sensitivity: index.sensitivity(&doors),
                unusedness: idleness(idle, settings),
                rarity: 1.0,
            },
            Evidence {
                uses_in_window: Some(0),
                uses_total: Some(used.uses),
                last_use: used.last,
                idle_days: Some(idle.num_days()),
                ..Evidence::default()
            },
            Remediation {
                action: Action::RevokeCredential,
                text: format!(
                    "revoke card {}: not used in {} days (or give it an expiry if it is a spare)",
                    c.label, settings.unused_days
                ),
            },
        );
        f.person = index.person(c.person_id);
        f.credential = Some(NamedRef {
            id: c.id,
            name: c.label.clone(),
        });
        findings.push(f);
    }
}

/// Levels of two or more doors more than half of which none of their holders used in the
/// window (holders who have held them for the whole window; newer grants are not judged).
fn overbroad(index: &Index<'_>, usage: &Usage, since: DateTime<Utc>, findings: &mut Vec<Finding>) {
    let mut holders: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for (person, held) in &index.held {
        for e in held {
            if e.granted_at <= since {
                holders.entry(e.level_id).or_default().push(*person);
            }
        }
    }
    for (level, people) in holders {
        let doors = index.doors_of(level);
        if doors.len() < 2 {
            continue;
        }
        let used: Vec<i64> = doors
            .iter()
            .copied()
            .filter(|d| {
                people.iter().any(|p| {
                    usage
                        .doors
                        .get(&(*p, *d))
                        .is_some_and(|u| u.uses_in_window > 0)
                })
            })
            .collect();
        let unused: Vec<i64> = doors
            .iter()
            .copied()
            .filter(|d| !used.contains(d))
            .collect();
        let share_unused = unused.len() as f64 / doors.len() as f64;
        if share_unused <= 0.5 {
            continue;
        }
        let name = index.level_name(level);
        let remediation = if used.is_empty() {
            Remediation {
                action: Action::Revoke,
                text: format!(
                    "retire '{name}': none of its {} holders used any of its doors",
                    people.len()
                ),
            }
        } else {
            let used_names: Vec<String> = used.iter().map(|d| index.door_name(*d)).collect();
            Remediation {
                action: Action::ReplaceLevel,
                text: format!(
                    "replace '{name}' with a narrower level of the {} doors its holders use: {}",
                    used.len(),
                    used_names
                        .iter()
                        .take(LISTED_DOORS)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        };
        let mut f = finding(
            FindingKind::OverbroadLevel,
            Factors {
                sensitivity: index.sensitivity(&unused),
                unusedness: share_unused,
                rarity: 1.0,
            },
            Evidence {
                doors: Some(doors.len()),
                doors_used: Some(used.len()),
                holders: Some(people.len()),
                door_names: unused
                    .iter()
                    .take(LISTED_DOORS)
                    .map(|d| index.door_name(*d))
                    .collect(),
                ..Evidence::default()
            },
            remediation,
        );
        f.level = Some(index.level(level));
        findings.push(f);
    }
}

/// People who can open every door of a toxic combination; returns notes on combinations
/// naming doors that do not exist.
fn toxic(
    index: &Index<'_>,
    usage: &Usage,
    settings: &Settings,
    findings: &mut Vec<Finding>,
) -> Vec<String> {
    let by_name: HashMap<&str, i64> = index
        .doors
        .values()
        .map(|d| (d.name.as_str(), d.id))
        .collect();
    let mut notes = Vec::new();
    for (name, door_names) in &settings.toxic {
        let missing: Vec<&str> = door_names
            .iter()
            .map(String::as_str)
            .filter(|d| !by_name.contains_key(d))
            .collect();
        if !missing.is_empty() {
            notes.push(format!(
                "toxic combination '{name}' names no door called {}: it is not checked",
                missing
                    .iter()
                    .map(|d| format!("'{d}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        }
        let doors: Vec<i64> = door_names
            .iter()
            .filter_map(|d| by_name.get(d.as_str()).copied())
            .collect();
        for (person, held) in &index.held {
            // Which of the person's levels grant each door of the combination.
            let mut granting: BTreeSet<i64> = BTreeSet::new();
            let all = doors.iter().all(|door| {
                let levels: Vec<i64> = held
                    .iter()
                    .filter(|e| {
                        index
                            .level_doors
                            .get(&e.level_id)
                            .is_some_and(|d| d.contains_key(door))
                    })
                    .map(|e| e.level_id)
                    .collect();
                granting.extend(&levels);
                !levels.is_empty()
            });
            if !all {
                continue;
            }
            let mut used = Use::default();
            for door in &doors {
                if let Some(u) = usage.doors.get(&(*person, *door)) {
                    used.add(u);
                }
            }
            let levels: Vec<String> = granting.iter().map(|l| index.level_name(*l)).collect();
            let mut f = finding(
                FindingKind::ToxicCombination,
                Factors {
                    sensitivity: index.sensitivity(&doors),
                    unusedness: 1.0,
                    rarity: 1.0,
                },
                Evidence {
                    uses_in_window: Some(used.uses_in_window),
                    uses_total: Some(used.uses),
                    last_use: used.last,
                    levels: levels.clone(),
                    door_names: door_names.clone(),
                    combination: Some(name.clone()),
                    ..Evidence::default()
                },
                Remediation {
                    action: Action::Review,
                    text: format!(
                        "'{name}': remove one of {} so that no one person opens {}",
                        levels
                            .iter()
                            .map(|n| format!("'{n}'"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        door_names.join(" and ")
                    ),
                },
            );
            f.person = index.person(*person);
            // One level alone granting it all is the one to narrow.
            if granting.len() == 1
                && let Some(level) = granting.first()
            {
                f.level = Some(index.level(*level));
            }
            findings.push(f);
        }
    }
    notes
}

impl fmt::Display for Finding {
    /// One line: kind, score, who, what, the fix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = self.person.as_ref().map_or_else(
            || "-".to_owned(),
            |p| format!("{} ({})", p.employee_id, p.name),
        );
        let what = self
            .level
            .as_ref()
            .map(|l| l.name.clone())
            .or_else(|| self.credential.as_ref().map(|c| format!("card {}", c.name)))
            .unwrap_or_else(|| "-".to_owned());
        write!(
            f,
            "{:<19} {:>5.1}  {:<28} {:<24} {}",
            self.kind.as_str(),
            self.score,
            who,
            what,
            self.remediation.text
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::{
        HeldCredential, HeldDoor, HeldEntitlement, HeldLevelItem, HeldPerson,
    };

    fn at(days_ago: i64) -> DateTime<Utc> {
        now() - TimeDelta::days(days_ago)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn person(id: i64, department: &str) -> HeldPerson {
        HeldPerson {
            id,
            employee_id: format!("E{id}"),
            name: format!("Person {id}"),
            department: department.to_owned(),
            title: "Engineer".to_owned(),
            status: "active".to_owned(),
        }
    }

    fn grant(id: i64, person_id: i64, level_id: i64, days_ago: i64) -> HeldEntitlement {
        HeldEntitlement {
            id,
            person_id,
            level_id,
            granted_at: at(days_ago),
            valid_until: None,
        }
    }

    fn item(level_id: i64, door: i64, schedule_id: i64) -> HeldLevelItem {
        HeldLevelItem {
            level_id,
            door_id: Some(door),
            zone_id: None,
            schedule_id,
        }
    }

    /// Doors 1 to 3 in zone 1; level 1 = doors 1 and 2 (schedule 1), level 2 = door 1
    /// (schedule 1), level 3 = door 1 on schedule 2.
    fn building() -> Holdings {
        Holdings {
            people: vec![person(1, "Eng")],
            levels: vec![
                (1, "Wide".into()),
                (2, "Narrow".into()),
                (3, "Nights".into()),
            ],
            level_items: vec![item(1, 1, 1), item(1, 2, 1), item(2, 1, 1), item(3, 1, 2)],
            doors: (1..=3)
                .map(|id| HeldDoor {
                    id,
                    zone_id: 1,
                    name: format!("Door {id}"),
                    sensitivity: "normal".into(),
                })
                .collect(),
            zones: vec![(1, None)],
            ..Holdings::default()
        }
    }

    fn kinds(review: &Review) -> Vec<(FindingKind, Option<String>)> {
        review
            .findings
            .iter()
            .map(|f| (f.kind, f.level.as_ref().map(|l| l.name.clone())))
            .collect()
    }

    #[test]
    fn a_grant_younger_than_the_window_is_not_judged_and_an_older_one_is() {
        let mut h = building();
        h.entitlements = vec![grant(1, 1, 1, 30)];
        let settings = Settings::default();
        let review = analyse(&h, &Usage::default(), &settings, now());
        assert!(review.findings.is_empty(), "{:?}", review.findings);
        h.entitlements = vec![grant(1, 1, 1, 120)];
        let review = analyse(&h, &Usage::default(), &settings, now());
        assert_eq!(
            kinds(&review),
            vec![
                (FindingKind::OverbroadLevel, Some("Wide".into())),
                (FindingKind::UnusedEntitlement, Some("Wide".into())),
            ]
        );
        // Both doors unused: the level scores 100 x 0.6 x 1 x 1. The grant, 120 days
        // idle of a 90-day window, 120 / 180 (above the floor of 0.5): 100 x 0.6 x 0.67.
        assert_eq!(review.findings[0].score, 60.0);
        let unused = &review.findings[1];
        assert_eq!(unused.score, 40.0);
        assert_eq!(unused.factors.unusedness, 0.67);
        assert_eq!(unused.evidence.idle_days, Some(120));
        // A use in the window, at either door, is a use of the level.
        let mut usage = Usage::default();
        usage.doors.insert(
            (1, 2),
            Use {
                uses: 1,
                uses_in_window: 1,
                last: Some(at(5)),
            },
        );
        let review = analyse(&h, &usage, &settings, now());
        assert!(review.findings.is_empty(), "{:?}", review.findings);
    }

    #[test]
    fn a_grant_is_redundant_only_on_the_same_schedule_and_for_as_long() {
        let mut h = building();
        let mut usage = Usage::default();
        for door in [1, 2] {
            usage.doors.insert(
                (1, door),
                Use {
                    uses: 3,
                    uses_in_window: 3,
                    last: Some(at(1)),
                },
            );
        }
        // Narrow (door 1, schedule 1) is inside Wide; Nights (door 1, schedule 2) is not.
        h.entitlements = vec![
            grant(1, 1, 1, 200),
            grant(2, 1, 2, 200),
            grant(3, 1, 3, 200),
        ];
        let review = analyse(&h, &usage, &Settings::default(), now());
        assert_eq!(
            kinds(&review),
            vec![(FindingKind::RedundantGrant, Some("Narrow".into()))]
        );
        assert_eq!(review.findings[0].evidence.levels, vec!["Wide".to_owned()]);
        // Wide ends before Narrow does: Narrow adds something after that.
        h.entitlements[0].valid_until = Some(now() + TimeDelta::days(10));
        let review = analyse(&h, &usage, &Settings::default(), now());
        assert!(review.findings.is_empty(), "{:?}", review.findings);
        // An expired or a suspended person's grants are not reviewed at all.
        h.entitlements[0].valid_until = Some(at(1));
        h.people[0].status = "suspended".into();
        let review = analyse(&h, &Usage::default(), &Settings::default(), now());
        assert!(review.findings.is_empty(), "{:?}", review.findings);
    }

    #[test]
    fn peers_are_compared_only_in_groups_large_enough() {
        let mut h = building();
        h.people = (1..=4).map(|id| person(id, "Eng")).collect();
        h.entitlements = vec![grant(1, 1, 3, 10)];
        let settings = Settings::default();
        // Three peers, none holding Nights: an outlier (too young to be unused).
        let review = analyse(&h, &Usage::default(), &settings, now());
        assert_eq!(
            kinds(&review),
            vec![(FindingKind::PeerOutlier, Some("Nights".into()))]
        );
        assert_eq!(review.findings[0].evidence.peers, Some(3));
        assert_eq!(review.findings[0].factors.rarity, 1.0);
        // Two peers only: not compared.
        h.people.pop();
        let review = analyse(&h, &Usage::default(), &settings, now());
        assert!(review.findings.is_empty(), "{:?}", review.findings);
        // One of three peers holding it too: a third, above the 30% line.
        h.people.push(person(4, "Eng"));
        h.entitlements.push(grant(2, 2, 3, 10));
        let review = analyse(&h, &Usage::default(), &settings, now());
        assert!(
            !review
                .findings
                .iter()
                .any(|f| f.kind == FindingKind::PeerOutlier && f.person.as_ref().unwrap().id == 1),
            "{:?}",
            review.findings
        );
    }

    #[test]
    fn a_card_is_dormant_from_its_last_use_or_its_registration() {
        let mut h = building();
        let card = |id: i64, created_days_ago: i64| HeldCredential {
            id,
            person_id: 1,
            label: format!("0{id}"),
            status: "active".into(),
            valid_until: None,
            created_at: at(created_days_ago),
        };
        h.credentials = vec![card(1, 400), card(2, 10), card(3, 400)];
        let mut usage = Usage::default();
        usage.credentials.insert(
            1,
            Use {
                uses: 4,
                uses_in_window: 0,
                last: Some(at(100)),
            },
        );
        usage.credentials.insert(
            3,
            Use {
                uses: 4,
                uses_in_window: 2,
                last: Some(at(2)),
            },
        );
        let review = analyse(&h, &usage, &Settings::default(), now());
        let dormant: Vec<&str> = review
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::DormantCredential)
            .map(|f| f.credential.as_ref().unwrap().name.as_str())
            .collect();
        // Card 2 is new and unused: not judged yet; card 3 is in use.
        assert_eq!(dormant, vec!["01"]);
        assert_eq!(review.findings[0].evidence.idle_days, Some(100));
    }

    #[test]
    fn a_toxic_combination_names_the_levels_and_an_unknown_door_is_a_note() {
        let mut h = building();
        h.level_items.push(item(2, 3, 1));
        h.entitlements = vec![grant(1, 1, 1, 10), grant(2, 1, 2, 10)];
        let settings = Settings {
            toxic: vec![
                (
                    "Two and three".into(),
                    vec!["Door 2".into(), "Door 3".into()],
                ),
                ("Ghost".into(), vec!["Door 1".into(), "Door 9".into()]),
            ],
            ..Settings::default()
        };
        let review = analyse(&h, &Usage::default(), &settings, now());
        let toxic: Vec<&Finding> = review
            .findings
            .iter()
            .filter(|f| f.kind == FindingKind::ToxicCombination)
            .collect();
        assert_eq!(toxic.len(), 1);
        assert_eq!(
            toxic[0].evidence.levels,
            vec!["Wide".to_owned(), "Narrow".to_owned()]
        );
        assert_eq!(review.notes.len(), 1);
        assert!(review.notes[0].contains("'Door 9'"), "{:?}", review.notes);
    }
}
