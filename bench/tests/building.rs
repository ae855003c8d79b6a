//! The generator makes what it is asked for, the snapshot accepts it, and both Cedar
//! forms answer every request of the mix as `decide` does.

use std::collections::HashSet;

use gatehouse::policy::{PolicyData, Snapshot};
use gatehouse_bench::building::{self, BuildingSpec};
use gatehouse_bench::cedar::Form;
use gatehouse_bench::requests::{self, Mix, Workload};
use gatehouse_bench::run::{self, Agreement};

fn tiny() -> BuildingSpec {
    BuildingSpec {
        credentials: 700,
        ..BuildingSpec::small(300)
    }
}

fn workload(data: &PolicyData, snap: &Snapshot, n: usize) -> Workload {
    requests::generate(data, snap, tiny().reference, n, Mix::default(), 7)
}

#[test]
fn generator_makes_the_requested_counts_and_compiles() {
    let spec = tiny();
    let data = building::generate(&spec, 1);
    assert_eq!(data.sites.len(), spec.sites);
    assert_eq!(data.zones.len(), spec.zones);
    assert_eq!(data.doors.len(), spec.doors);
    assert_eq!(data.people.len(), spec.people);
    assert_eq!(data.credentials.len(), spec.credentials);
    assert_eq!(data.schedules.len(), spec.schedules);
    assert_eq!(data.levels.len(), spec.levels);
    assert!(!data.holidays.is_empty());

    // Shape: zones nest at most three deep, every door has a reader, every person 1–5
    // entitlements and 1–4 credentials, some people and credentials are not usable.
    for z in &data.zones {
        let mut depth = 1;
        let mut cur = z.parent_id;
        while let Some(p) = cur {
            depth += 1;
            cur = data
                .zones
                .iter()
                .find(|x| x.id == p)
                .and_then(|x| x.parent_id);
        }
        assert!(depth <= 3, "zone {} is {depth} deep", z.id);
    }
    let with_reader: HashSet<i64> = data.readers.iter().map(|r| r.door_id).collect();
    assert!(data.doors.iter().all(|d| with_reader.contains(&d.id)));
    for p in &data.people {
        let ents = data
            .entitlements
            .iter()
            .filter(|e| e.person_id == p.id)
            .count();
        let creds = data
            .credentials
            .iter()
            .filter(|c| c.person_id == p.id)
            .count();
        assert!(
            (1..=5).contains(&ents),
            "person {} has {ents} entitlements",
            p.id
        );
        assert!(
            (1..=4).contains(&creds),
            "person {} has {creds} credentials",
            p.id
        );
    }
    assert!(data.schedules.iter().any(|s| s.windows.iter().any(|w| {
        // A window that starts in the evening and runs past midnight.
        let hour: u32 = w
            .cron
            .split_whitespace()
            .nth(1)
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        hour * 60 + w.duration_min > 24 * 60
    })));

    // Deterministic.
    assert_eq!(data, building::generate(&spec, 1));
    assert_ne!(data, building::generate(&spec, 2));

    let snap = Snapshot::compile(&data, spec.reference).unwrap();
    let c = snap.counts();
    assert_eq!(
        (c.sites, c.zones, c.doors, c.people, c.credentials, c.levels),
        (
            spec.sites,
            spec.zones,
            spec.doors,
            spec.people,
            spec.credentials,
            spec.levels
        )
    );
    assert_eq!(c.entitlements, data.entitlements.len());
    assert!(c.door_level_pairs > 0 && c.timelines > 0);

    // The default spec is the building.
    let full = BuildingSpec::default();
    assert_eq!(
        (
            full.people,
            full.credentials,
            full.doors,
            full.zones,
            full.levels,
            full.schedules
        ),
        (100_000, 200_000, 1_000, 50, 1_000, 20)
    );
}

#[test]
fn request_mix_has_the_requested_shares() {
    let spec = tiny();
    let data = building::generate(&spec, 1);
    let snap = Snapshot::compile(&data, spec.reference).unwrap();
    let w = workload(&data, &snap, 1_000);
    assert!(w.complete, "{:?}", w.outcomes);
    assert_eq!((w.granted, w.denied, w.unknown), (600, 300, 100));
    assert_eq!(w.requests.len(), 1_000);
    // Denials for several reasons, not one.
    let reasons: Vec<&String> = w.outcomes.keys().filter(|k| *k != "grant").collect();
    assert!(reasons.len() >= 4, "{reasons:?}");
    for code in [
        "schedule",
        "no_entitlement",
        "inactive",
        "unknown_credential",
    ] {
        assert!(
            w.outcomes.contains_key(code),
            "no {code} in {:?}",
            w.outcomes
        );
    }
}

fn assert_agree(results: &[(Form, Agreement)], w: &Workload) {
    for (form, a) in results {
        assert_eq!(a.compared, w.requests.len());
        assert!(
            a.all(),
            "cedar {} form disagrees with decide on {} of {} requests, e.g. {:?}",
            form.name(),
            a.compared - a.agree,
            a.compared,
            a.first_disagreements
                .iter()
                .map(|&i| &w.requests[i])
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn cedar_forms_agree_with_decide() {
    let spec = tiny();
    for seed in [1, 2, 3] {
        let data = building::generate(&spec, seed);
        let snap = Snapshot::compile(&data, spec.reference).unwrap();
        let w = workload(&data, &snap, 600);
        let results = run::agreement_check(&data, &snap, &w).unwrap();
        assert_agree(&results, &w);
    }
}

#[test]
fn cedar_forms_agree_under_lockdown_and_door_modes() {
    let spec = tiny();
    let mut data = building::generate(&spec, 4);
    let snap = Snapshot::compile(&data, spec.reference).unwrap();
    let w = workload(&data, &snap, 600);
    // Now change the policy under the same requests: the second site locked down, some
    // doors locked, unlocked or card-and-PIN.
    data.sites[1].lockdown = true;
    for (i, d) in data.doors.iter_mut().enumerate() {
        d.mode = match i % 7 {
            0 => gatehouse::policy::DoorMode::Locked,
            1 => gatehouse::policy::DoorMode::Unlocked,
            2 => gatehouse::policy::DoorMode::CardAndPin,
            _ => d.mode,
        };
    }
    let snap = Snapshot::compile(&data, spec.reference).unwrap();
    let results = run::agreement_check(&data, &snap, &w).unwrap();
    assert_agree(&results, &w);
}

/// The check can fail: Cedar given a policy that differs from decide's (every level
/// emptied) must disagree on the granted requests.
#[test]
fn agreement_check_detects_a_different_policy() {
    let spec = tiny();
    let data = building::generate(&spec, 1);
    let snap = Snapshot::compile(&data, spec.reference).unwrap();
    let w = workload(&data, &snap, 300);
    let mut other = data.clone();
    for level in &mut other.levels {
        level.items.clear();
    }
    let results = run::agreement_check(&other, &snap, &w).unwrap();
    for (form, a) in &results {
        assert!(!a.all(), "cedar {} form should disagree", form.name());
    }
}
