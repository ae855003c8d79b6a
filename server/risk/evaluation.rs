//! Runs the scorer over a generated scenario the way the appliance does (baselines trained
//! on the history before, then each swipe scored and taken in, one after another) and
//! measures it: precision at an alert budget, recall per incident type, false alerts per
//! 1,000 people per day. The tests and the `risk-eval` benchmark use it.

use std::collections::BTreeMap;

use super::baselines::Baselines;
use super::recent::Recent;
use super::scenario::{IncidentKind, Labelled, Routine, Scenario};
use super::score::{Features, features, score};

/// Every evaluation swipe's score, in the scenario's order.
#[derive(Debug, Clone)]
pub struct Replay {
    /// Total evidence per evaluation swipe (what alerts are ranked by).
    pub evidence: Vec<f32>,
    /// The 0-100 score per evaluation swipe.
    pub value: Vec<u8>,
    /// Each feature's evidence per swipe: the Isolation Forest reference's input.
    pub features: Vec<[f32; 10]>,
    pub baselines: Baselines,
}

/// Trains on the scenario's history, then scores the evaluation period swipe by swipe,
/// updating the baselines and the short-term state after each.
pub fn replay(s: &Scenario) -> Replay {
    let mut baselines = Baselines::default();
    let mut recent = Recent::default();
    for e in s.training() {
        baselines.observe(&s.context, &e.observation);
        recent.record(&s.context, &e.observation);
    }
    let eval = s.evaluation();
    let mut out = Replay {
        evidence: Vec::with_capacity(eval.len()),
        value: Vec::with_capacity(eval.len()),
        features: Vec::with_capacity(eval.len()),
        baselines: Baselines::default(),
    };
    for e in eval {
        let o = &e.observation;
        let scored = score(&baselines, &s.context, &recent, o);
        let f: Features = features(&baselines, &s.context, &recent, o);
        out.evidence.push(scored.evidence);
        out.value.push(scored.value);
        out.features.push(f.evidence);
        baselines.observe(&s.context, o);
        recent.record(&s.context, o);
    }
    out.baselines = baselines;
    out
}

/// What a ranking achieves at one alert budget.
#[derive(Debug, Clone, PartialEq)]
pub struct AtBudget {
    /// The share of swipes alerted on (0.001 = the top 0.1%).
    pub budget: f64,
    pub alerts: usize,
    /// The lowest evidence among the alerts.
    pub cutoff: f32,
    /// What the false alerts were about: their strongest feature's code, counted.
    pub false_alert_reasons: BTreeMap<&'static str, usize>,
    /// Alerts that are incident swipes.
    pub precision: f64,
    /// Per incident type: incidents with at least one swipe among the alerts, of all.
    pub recall: BTreeMap<IncidentKind, (usize, usize)>,
    /// Alerts on routine swipes per 1,000 people per day.
    pub false_alerts_per_1000_people_day: f64,
}

/// Measures a ranking (`rank[i]` for evaluation swipe i: higher is more suspicious).
pub fn measure(s: &Scenario, rank: &[f32], budget: f64) -> AtBudget {
    let eval = s.evaluation();
    let alerts = ((eval.len() as f64 * budget).ceil() as usize).clamp(1, eval.len().max(1));
    let top = top_indices(rank, alerts);
    let mut at = measure_alerts(s, eval, &top, budget, None);
    at.cutoff = top.last().map_or(0.0, |&i| rank[i]);
    at
}

/// Like `measure`, naming the strongest feature of each false alert.
pub fn measure_replay(s: &Scenario, r: &Replay, budget: f64) -> AtBudget {
    let eval = s.evaluation();
    let alerts = ((eval.len() as f64 * budget).ceil() as usize).clamp(1, eval.len().max(1));
    let top = top_indices(&r.evidence, alerts);
    let mut at = measure_alerts(s, eval, &top, budget, Some(&r.features));
    at.cutoff = top.last().map_or(0.0, |&i| r.evidence[i]);
    at
}

/// Measures the swipes whose 0-100 score reaches `threshold` as the alerts.
pub fn measure_threshold(s: &Scenario, values: &[u8], threshold: u8) -> AtBudget {
    let eval = s.evaluation();
    let top: Vec<usize> = (0..values.len())
        .filter(|&i| values[i] >= threshold)
        .collect();
    let share = top.len() as f64 / eval.len().max(1) as f64;
    let mut at = measure_alerts(s, eval, &top, share, None);
    at.cutoff = f32::from(threshold);
    at
}

fn measure_alerts(
    s: &Scenario,
    eval: &[Labelled],
    top: &[usize],
    budget: f64,
    features: Option<&[[f32; 10]]>,
) -> AtBudget {
    let mut false_alert_reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut recall: BTreeMap<IncidentKind, (usize, usize)> = BTreeMap::new();
    let mut incidents: BTreeMap<u32, (IncidentKind, bool)> = BTreeMap::new();
    for e in eval {
        if let Some((kind, id)) = e.incident {
            incidents.insert(id, (kind, false));
        }
    }
    let mut hits = 0;
    for &i in top {
        if let Some((_, id)) = eval[i].incident {
            hits += 1;
            if let Some(found) = incidents.get_mut(&id) {
                found.1 = true;
            }
        } else if let Some(f) = features.and_then(|f| f.get(i)) {
            let strongest = (0..f.len())
                .max_by(|&a, &b| f[a].total_cmp(&f[b]))
                .unwrap_or(0);
            *false_alert_reasons
                .entry(super::score::ReasonCode::ALL[strongest].as_str())
                .or_default() += 1;
        }
    }
    for (kind, found) in incidents.values() {
        let r = recall.entry(*kind).or_default();
        r.1 += 1;
        r.0 += usize::from(*found);
    }
    let people_days = s.people.len() as f64 * f64::from(s.days - training_days(s));
    AtBudget {
        budget,
        alerts: top.len(),
        cutoff: 0.0,
        false_alert_reasons,
        precision: if top.is_empty() {
            0.0
        } else {
            hits as f64 / top.len() as f64
        },
        recall,
        false_alerts_per_1000_people_day: (top.len() - hits) as f64 * 1000.0 / people_days.max(1.0),
    }
}

fn training_days(s: &Scenario) -> u32 {
    let span = s.evaluation_from - super::scenario::local(0, 0.0);
    span.num_days().max(0) as u32
}

/// The indices of the `n` highest values, ties broken by position.
pub fn top_indices(rank: &[f32], n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..rank.len()).collect();
    order.sort_by(|&a, &b| rank[b].total_cmp(&rank[a]).then(a.cmp(&b)));
    order.truncate(n);
    order
}

/// Of the routine (unlabelled) swipes of people with `routine`, the share scoring at least
/// `threshold`.
pub fn routine_alert_share(
    s: &Scenario,
    values: &[u8],
    routine: Routine,
    threshold: u8,
) -> (usize, usize) {
    let mut flagged = 0;
    let mut total = 0;
    for (e, v) in s.evaluation().iter().zip(values) {
        if e.incident.is_none() && e.routine == Some(routine) {
            total += 1;
            flagged += usize::from(*v >= threshold);
        }
    }
    (flagged, total)
}
