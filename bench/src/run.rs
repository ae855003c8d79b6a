//! The measured passes of the decision benchmark, shared by the binary and the tests.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::Result;
use cedar_policy::Authorizer;
use chrono::{DateTime, Utc};
use gatehouse::policy::{PolicyData, Presence, Snapshot, decide};

use crate::cedar::{self, CedarBuilding, Form};
use crate::measure::Stats;
use crate::requests::{BenchRequest, Workload};

/// `decide` over a workload: per-call times and whether each request was granted.
pub struct DecidePass {
    pub stats: Stats,
    pub granted: Vec<bool>,
    /// Requests `decide` refused to answer (unknown reader); always 0 for a generated mix.
    pub errors: usize,
}

/// Times each `decide` call with its own `Instant` pair (so each sample includes one
/// timer overhead; see [`crate::measure::timer_overhead`]).
pub fn decide_timed(snap: &Snapshot, requests: &[BenchRequest], at: DateTime<Utc>) -> DecidePass {
    let presence = Presence::new();
    let mut samples = Vec::with_capacity(requests.len());
    let mut granted = Vec::with_capacity(requests.len());
    let mut errors = 0;
    for r in requests {
        let req = r.as_request();
        let t = Instant::now();
        let d = decide(black_box(snap), &presence, black_box(&req), at);
        let elapsed = t.elapsed();
        let d = black_box(d);
        samples.push(elapsed);
        match d {
            Ok(d) => granted.push(d.granted()),
            Err(_) => {
                errors += 1;
                granted.push(false);
            }
        }
    }
    DecidePass {
        stats: Stats::of(samples),
        granted,
        errors,
    }
}

/// One untimed-per-call pass: the whole batch's wall time (no timer inside the loop).
pub fn decide_batch(snap: &Snapshot, requests: &[BenchRequest], at: DateTime<Utc>) -> Duration {
    let presence = Presence::new();
    let t = Instant::now();
    for r in requests {
        let req = r.as_request();
        let _ = black_box(decide(black_box(snap), &presence, black_box(&req), at));
    }
    t.elapsed()
}

/// A Cedar form ready to evaluate: its entities, policies and one prepared request per
/// swipe, with what preparing them cost (none of it inside the per-request timing).
pub struct PreparedCedar {
    pub building: CedarBuilding,
    pub requests: Vec<cedar_policy::Request>,
    /// Parsing the policy set and building the entity store.
    pub build_time: Duration,
    /// Building every request (context with the open schedules) together.
    pub request_time: Duration,
}

pub fn prepare_cedar(
    data: &PolicyData,
    snap: &Snapshot,
    requests: &[BenchRequest],
    form: Form,
    at: DateTime<Utc>,
) -> Result<PreparedCedar> {
    let t = Instant::now();
    let building = CedarBuilding::build(data, form, at)?;
    let build_time = t.elapsed();
    prepare_requests(building, build_time, data, snap, requests, at)
}

/// Prepares one Cedar request per swipe for an already built policy set and store.
pub fn prepare_requests(
    building: CedarBuilding,
    build_time: Duration,
    data: &PolicyData,
    snap: &Snapshot,
    requests: &[BenchRequest],
    at: DateTime<Utc>,
) -> Result<PreparedCedar> {
    let schedule_ids: Vec<i64> = data.schedules.iter().map(|s| s.id).collect();
    let t = Instant::now();
    let requests = requests
        .iter()
        .map(|r| building.request(r, snap, &schedule_ids, at))
        .collect::<Result<Vec<_>>>()?;
    let request_time = t.elapsed();
    Ok(PreparedCedar {
        building,
        requests,
        build_time,
        request_time,
    })
}

/// Cedar over prepared requests: per-call times of `is_authorized`, the decisions, and
/// how many evaluation errors Cedar reported in total.
pub struct CedarPass {
    pub stats: Stats,
    pub allowed: Vec<bool>,
    pub errors: usize,
}

pub fn cedar_timed(prepared: &PreparedCedar, range: std::ops::Range<usize>) -> CedarPass {
    let authorizer = Authorizer::new();
    let requests = &prepared.requests[range];
    let mut samples = Vec::with_capacity(requests.len());
    let mut allowed = Vec::with_capacity(requests.len());
    let mut errors = 0;
    for req in requests {
        let t = Instant::now();
        let r = cedar::is_allowed(&authorizer, black_box(&prepared.building), black_box(req));
        let elapsed = t.elapsed();
        let (allow, errs) = black_box(r);
        samples.push(elapsed);
        allowed.push(allow);
        errors += errs;
    }
    CedarPass {
        stats: Stats::of(samples),
        allowed,
        errors,
    }
}

/// How far two engines agree on grant / refuse over the same requests.
#[derive(Debug, Clone, Default)]
pub struct Agreement {
    pub compared: usize,
    pub agree: usize,
    /// Indexes (into the compared requests) of the first few disagreements.
    pub first_disagreements: Vec<usize>,
}

impl Agreement {
    pub fn of(decide: &[bool], cedar: &[bool]) -> Agreement {
        let mut a = Agreement::default();
        for (i, (d, c)) in decide.iter().zip(cedar).enumerate() {
            a.compared += 1;
            if d == c {
                a.agree += 1;
            } else if a.first_disagreements.len() < 10 {
                a.first_disagreements.push(i);
            }
        }
        a
    }

    pub fn all(&self) -> bool {
        self.agree == self.compared
    }
}

/// The whole check on a (small) building: decide and both Cedar forms on every request.
pub fn agreement_check(
    data: &PolicyData,
    snap: &Snapshot,
    workload: &Workload,
) -> Result<Vec<(Form, Agreement)>> {
    let decided = decide_timed(snap, &workload.requests, workload.at);
    let mut out = Vec::new();
    for form in [Form::PerLevel, Form::Attributes] {
        let prepared = prepare_cedar(data, snap, &workload.requests, form, workload.at)?;
        let pass = cedar_timed(&prepared, 0..prepared.requests.len());
        out.push((form, Agreement::of(&decided.granted, &pass.allowed)));
    }
    Ok(out)
}
