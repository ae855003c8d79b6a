//! The request mix of the decision benchmark: swipes at one instant, chosen so that a
//! set share is granted, a share is refused for varied reasons (schedule, no entitlement,
//! inactive or expired credential or person, door mode) and a share carries credentials
//! the building has never seen.
//!
//! Candidates are aimed at an outcome from the policy data (an entitled person at a door
//! of their level whose schedule is open, the same with a closed schedule, a random
//! door, an inactive credential, ...), then labelled by `decide` itself and kept while
//! their bucket has room, so the shares are exact whatever the aim's hit rate.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use gatehouse::policy::{
    CredentialKey, CredentialStatus, DenyCode, Outcome, PersonStatus, PolicyData, Presence,
    Request, Snapshot, Target, decide,
};
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};

use crate::building::unknown_key;

/// One swipe of the mix, with what the reference engines need besides the reader id.
#[derive(Debug, Clone)]
pub struct BenchRequest {
    pub reader_id: String,
    pub key: CredentialKey,
    pub door_id: i64,
    pub site_id: i64,
}

impl BenchRequest {
    pub fn as_request(&self) -> Request<'_> {
        Request {
            reader_id: &self.reader_id,
            credential: &self.key,
            pin: None,
        }
    }
}

/// Shares of the mix, in percent; unknown is the rest.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub granted_pct: usize,
    pub denied_pct: usize,
}

impl Default for Mix {
    fn default() -> Self {
        Mix {
            granted_pct: 60,
            denied_pct: 30,
        }
    }
}

/// The generated requests and how `decide` answered them while they were chosen.
#[derive(Debug, Clone)]
pub struct Workload {
    pub at: DateTime<Utc>,
    pub requests: Vec<BenchRequest>,
    pub granted: usize,
    /// Known credentials refused or asked for a PIN.
    pub denied: usize,
    pub unknown: usize,
    /// Outcome label (`grant`, a deny code, `pin_required`) -> count.
    pub outcomes: BTreeMap<String, usize>,
    /// Whether every bucket was filled (a tiny building may not offer enough grants).
    pub complete: bool,
}

/// Lookups over the policy data for aiming candidates. Rows are referred to by their
/// position; ids are mapped once (the snapshot has already checked every reference).
struct Index<'a> {
    data: &'a PolicyData,
    zone_ix: HashMap<i64, usize>,
    door_ix: HashMap<i64, usize>,
    level_ix: HashMap<i64, usize>,
    /// Doors in each zone's subtree, by zone.
    zone_doors: Vec<Vec<usize>>,
    /// Readers of each door.
    door_readers: Vec<Vec<usize>>,
    /// Site id of each door.
    door_site: Vec<i64>,
    /// Entitlements of each credential's person, by credential.
    credential_ents: Vec<Vec<usize>>,
    /// Credentials whose credential and person are both active and valid.
    usable: Vec<usize>,
    /// Credentials refused for the credential's or the person's state.
    unusable: Vec<usize>,
}

fn positions<T>(rows: &[T], id: impl Fn(&T) -> i64) -> HashMap<i64, usize> {
    rows.iter().enumerate().map(|(i, r)| (id(r), i)).collect()
}

impl<'a> Index<'a> {
    fn new(data: &'a PolicyData, at: DateTime<Utc>) -> Self {
        let zone_ix = positions(&data.zones, |z| z.id);
        let door_ix = positions(&data.doors, |d| d.id);
        let person_ix = positions(&data.people, |p| p.id);
        let level_ix = positions(&data.levels, |l| l.id);
        let n_zones = data.zones.len();
        let mut children = vec![Vec::new(); n_zones];
        for (z, zone) in data.zones.iter().enumerate() {
            if let Some(&p) = zone.parent_id.and_then(|p| zone_ix.get(&p)) {
                children[p].push(z);
            }
        }
        let mut own_doors = vec![Vec::new(); n_zones];
        let mut door_site = Vec::with_capacity(data.doors.len());
        for (d, door) in data.doors.iter().enumerate() {
            let zone = zone_ix.get(&door.zone_id).copied();
            if let Some(z) = zone {
                own_doors[z].push(d);
            }
            door_site.push(zone.map_or(0, |z| data.zones[z].site_id));
        }
        let zone_doors = (0..n_zones)
            .map(|z| {
                let mut out = Vec::new();
                let mut stack = vec![z];
                while let Some(z) = stack.pop() {
                    out.extend_from_slice(&own_doors[z]);
                    stack.extend_from_slice(&children[z]);
                }
                out
            })
            .collect();
        let mut door_readers = vec![Vec::new(); data.doors.len()];
        for (r, reader) in data.readers.iter().enumerate() {
            if let Some(&d) = door_ix.get(&reader.door_id) {
                door_readers[d].push(r);
            }
        }
        let mut person_ents = vec![Vec::new(); data.people.len()];
        for (e, ent) in data.entitlements.iter().enumerate() {
            if let Some(&p) = person_ix.get(&ent.person_id) {
                person_ents[p].push(e);
            }
        }
        let mut credential_ents = Vec::with_capacity(data.credentials.len());
        let (mut usable, mut unusable) = (Vec::new(), Vec::new());
        for (c, cred) in data.credentials.iter().enumerate() {
            let Some(&p) = person_ix.get(&cred.person_id) else {
                credential_ents.push(Vec::new());
                continue;
            };
            credential_ents.push(person_ents[p].clone());
            let person = &data.people[p];
            let ok = cred.status == CredentialStatus::Active
                && cred.valid_until.is_none_or(|u| u > at)
                && person.status == PersonStatus::Active
                && person.valid_from.is_none_or(|f| f <= at)
                && person.valid_until.is_none_or(|u| u > at);
            if ok { &mut usable } else { &mut unusable }.push(c);
        }
        Index {
            data,
            zone_ix,
            door_ix,
            level_ix,
            zone_doors,
            door_readers,
            door_site,
            credential_ents,
            usable,
            unusable,
        }
    }

    fn target_doors(&self, target: Target) -> &[usize] {
        match target {
            Target::Zone(z) => self
                .zone_ix
                .get(&z)
                .map_or(&[][..], |&z| &self.zone_doors[z]),
            Target::Door(d) => self
                .door_ix
                .get_key_value(&d)
                .map_or(&[][..], |(_, d)| std::slice::from_ref(d)),
        }
    }

    fn request(&self, key: &CredentialKey, door: usize, rng: &mut StdRng) -> Option<BenchRequest> {
        let reader = *self.door_readers.get(door)?.choose(rng)?;
        Some(BenchRequest {
            reader_id: self.data.readers[reader].reader_id.clone(),
            key: key.clone(),
            door_id: self.data.doors[door].id,
            site_id: self.door_site[door],
        })
    }

    /// A door of one of the credential holder's levels, through an item whose schedule
    /// is open (`open = true`) or closed at `at`; only unexpired entitlements unless
    /// `expired`.
    fn entitled_door(
        &self,
        snap: &Snapshot,
        cred: usize,
        at: DateTime<Utc>,
        open: bool,
        expired: bool,
        rng: &mut StdRng,
    ) -> Option<usize> {
        let ents: Vec<usize> = self.credential_ents[cred]
            .iter()
            .copied()
            .filter(|&e| {
                let until = self.data.entitlements[e].valid_until;
                expired == until.is_some_and(|u| u <= at)
            })
            .collect();
        let e = *ents.choose(rng)?;
        let level = &self.data.levels[*self.level_ix.get(&self.data.entitlements[e].level_id)?];
        let items: Vec<_> = level
            .items
            .iter()
            .filter(|item| {
                self.target_doors(item.target).first().is_some_and(|&d| {
                    snap.is_schedule_open(item.schedule_id, self.door_site[d], at) == Some(open)
                })
            })
            .collect();
        let item = items.choose(rng)?;
        self.target_doors(item.target).choose(rng).copied()
    }
}

/// What a candidate is aimed at.
#[derive(Debug, Clone, Copy)]
enum Aim {
    Grant,
    Schedule,
    NoEntitlement,
    Inactive,
    ExpiredEntitlement,
    Unknown,
}

const AIMS: &[Aim] = &[
    Aim::Grant,
    Aim::Grant,
    Aim::Grant,
    Aim::Grant,
    Aim::Schedule,
    Aim::NoEntitlement,
    Aim::Inactive,
    Aim::ExpiredEntitlement,
    Aim::Unknown,
];

/// Builds `n` requests at `at` in the shares of `mix`, shuffled, deterministically from
/// `seed`. `snap` must be compiled from `data` around `at`.
pub fn generate(
    data: &PolicyData,
    snap: &Snapshot,
    at: DateTime<Utc>,
    n: usize,
    mix: Mix,
    seed: u64,
) -> Workload {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_F4E9_u64);
    let index = Index::new(data, at);
    let presence = Presence::new();
    let want_granted = n * mix.granted_pct / 100;
    let want_denied = n * mix.denied_pct / 100;
    let want_unknown = n - want_granted - want_denied;
    let (mut granted, mut denied, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let max_attempts = 200 * n + 1_000;
    let mut attempt = 0;
    while (granted.len() < want_granted
        || denied.len() < want_denied
        || unknown.len() < want_unknown)
        && attempt < max_attempts
    {
        let aim = AIMS[attempt % AIMS.len()];
        attempt += 1;
        let candidate = match aim {
            Aim::Unknown => {
                let key = unknown_key(&mut rng);
                let door = rng.random_range(0..data.doors.len().max(1));
                index.request(&key, door, &mut rng)
            }
            Aim::Grant | Aim::Schedule | Aim::ExpiredEntitlement => {
                index.usable.choose(&mut rng).copied().and_then(|c| {
                    let door = index.entitled_door(
                        snap,
                        c,
                        at,
                        matches!(aim, Aim::Grant | Aim::ExpiredEntitlement),
                        matches!(aim, Aim::ExpiredEntitlement),
                        &mut rng,
                    )?;
                    index.request(&data.credentials[c].key, door, &mut rng)
                })
            }
            Aim::NoEntitlement => index.usable.choose(&mut rng).copied().and_then(|c| {
                let door = rng.random_range(0..data.doors.len().max(1));
                index.request(&data.credentials[c].key, door, &mut rng)
            }),
            Aim::Inactive => index.unusable.choose(&mut rng).copied().and_then(|c| {
                let door = index
                    .entitled_door(snap, c, at, true, false, &mut rng)
                    .unwrap_or_else(|| rng.random_range(0..data.doors.len().max(1)));
                index.request(&data.credentials[c].key, door, &mut rng)
            }),
        };
        let Some(candidate) = candidate else {
            continue;
        };
        let Ok(decision) = decide(snap, &presence, &candidate.as_request(), at) else {
            continue;
        };
        let (bucket, want, label) = match decision.outcome {
            Outcome::Grant { .. } => (&mut granted, want_granted, "grant".to_owned()),
            Outcome::Deny(DenyCode::UnknownCredential) => (
                &mut unknown,
                want_unknown,
                DenyCode::UnknownCredential.to_string(),
            ),
            Outcome::Deny(code) => (&mut denied, want_denied, code.to_string()),
            Outcome::PinRequired => (&mut denied, want_denied, "pin_required".to_owned()),
        };
        if bucket.len() < want {
            bucket.push(candidate);
            *outcomes.entry(label).or_default() += 1;
        }
    }
    let complete = granted.len() == want_granted
        && denied.len() == want_denied
        && unknown.len() == want_unknown;
    let (g, d, u) = (granted.len(), denied.len(), unknown.len());
    let mut requests = granted;
    requests.append(&mut denied);
    requests.append(&mut unknown);
    requests.shuffle(&mut rng);
    Workload {
        at,
        requests,
        granted: g,
        denied: d,
        unknown: u,
        outcomes,
        complete,
    }
}
