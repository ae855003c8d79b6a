//! `Snapshot::with_people` against a full compile: random changes to people, their cards
//! and their entitlements, laid over one after another, must answer every swipe, every
//! explanation and every lookup exactly as compiling the changed policy does.

use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::fixtures::*;
use super::model::*;
use super::{PatchError, PeopleQuery, PersonRecord, Presence, Request, Snapshot, Subject};

/// What the database would hand `load_people` for these people.
fn records(data: &PolicyData, ids: &[i64]) -> Vec<PersonRecord> {
    ids.iter()
        .map(|&id| PersonRecord {
            person_id: id,
            person: data.people.iter().find(|p| p.id == id).cloned(),
            credentials: data
                .credentials
                .iter()
                .filter(|c| c.person_id == id)
                .cloned()
                .collect(),
            entitlements: data
                .entitlements
                .iter()
                .filter(|e| e.person_id == id)
                .cloned()
                .collect(),
        })
        .collect()
}

fn times() -> [DateTime<Utc>; 4] {
    [
        WED_10,
        WED_22,
        WED_10 + TimeDelta::days(3),
        WED_10 + TimeDelta::days(40),
    ]
}

/// Everything a reader, the API or the console can ask of a snapshot's people.
fn assert_same(
    laid: &Snapshot,
    compiled: &Snapshot,
    keys: &[CredentialKey],
    people: &[i64],
    ids: i64,
    step: &str,
) {
    assert_eq!(laid.counts(), compiled.counts(), "{step}: counts");
    for id in 0..=ids {
        assert_eq!(laid.person(id), compiled.person(id), "{step}: person {id}");
        assert_eq!(
            laid.entitlements_of(id),
            compiled.entitlements_of(id),
            "{step}: entitlements of {id}"
        );
        assert_eq!(
            laid.credential_by_id(id),
            compiled.credential_by_id(id),
            "{step}: credential {id}"
        );
        for employee_id in [format!("E{id}"), format!("X{id}")] {
            assert_eq!(
                laid.person_by_employee_id(&employee_id),
                compiled.person_by_employee_id(&employee_id),
                "{step}: employee id {employee_id}"
            );
        }
    }
    let everyone = PeopleQuery::default();
    assert_eq!(
        laid.find_people(everyone, 0, 1000),
        compiled.find_people(everyone, 0, 1000),
        "{step}: the people list"
    );
    let presence = Presence::new();
    for now in times() {
        for reader in compiled.readers() {
            for key in keys {
                let request = Request {
                    reader_id: &reader.reader_id,
                    credential: key,
                    pin: None,
                };
                assert_eq!(
                    super::decide(laid, &presence, &request, now),
                    super::decide(compiled, &presence, &request, now),
                    "{step}: {key} at {} at {now}",
                    reader.reader_id
                );
            }
        }
        for door in compiled.doors() {
            for &id in people {
                let explained = |snap: &Snapshot| {
                    super::explain(snap, &presence, Subject::Person(id), door.id, now)
                        .map_err(|e| e.to_string())
                };
                assert_eq!(
                    explained(laid),
                    explained(compiled),
                    "{step}: explain person {id} at door {} at {now}",
                    door.id
                );
            }
        }
    }
}

const LEVELS: [i64; 5] = [STAFF, LAB_24_7, GARAGE, PLANT, MAIN];

fn uid(n: i64) -> CredentialKey {
    CredentialKey::card(&format!("{:06X}", 0xC0_0000 + n)).unwrap()
}

fn valid_until(rng: &mut StdRng) -> Option<DateTime<Utc>> {
    match rng.random_range(0..3) {
        0 => None,
        1 => Some(WED_10 - TimeDelta::days(1)),
        _ => Some(WED_10 + TimeDelta::days(5)),
    }
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

/// One random person-scoped change to `data`; returns the people whose rows it changed.
fn change(
    rng: &mut StdRng,
    data: &mut PolicyData,
    next_id: &mut i64,
    keys: &mut Vec<CredentialKey>,
) -> (String, Vec<i64>) {
    let person_ids: Vec<i64> = data.people.iter().map(|p| p.id).collect();
    let Some(someone) = pick(rng, &person_ids) else {
        return ("nobody".into(), vec![]);
    };
    let mut new_id = || {
        *next_id += 1;
        *next_id
    };
    match rng.random_range(0..12) {
        0 => {
            let status = pick(rng, PersonStatus::ALL).unwrap_or(PersonStatus::Active);
            data.people
                .iter_mut()
                .filter(|p| p.id == someone)
                .for_each(|p| p.status = status);
            (format!("person {someone} {status}"), vec![someone])
        }
        1 => {
            let until = valid_until(rng);
            data.people
                .iter_mut()
                .filter(|p| p.id == someone)
                .for_each(|p| p.valid_until = until);
            (format!("person {someone} until {until:?}"), vec![someone])
        }
        2 => {
            let id = new_id();
            let key = uid(id);
            keys.push(key.clone());
            data.credentials.push(Credential {
                id,
                person_id: someone,
                key,
                pin_hash: None,
                status: CredentialStatus::Active,
                valid_until: valid_until(rng),
            });
            (format!("card {id} for {someone}"), vec![someone])
        }
        3 => {
            let Some(c) = pick(rng, &data.credentials) else {
                return ("no card".into(), vec![]);
            };
            data.credentials.retain(|x| x.id != c.id);
            (format!("card {} removed", c.id), vec![c.person_id])
        }
        4 => {
            let Some(c) = pick(rng, &data.credentials) else {
                return ("no card".into(), vec![]);
            };
            let status = CredentialStatus::ALL[rng.random_range(0..CredentialStatus::ALL.len())];
            data.credentials
                .iter_mut()
                .filter(|x| x.id == c.id)
                .for_each(|x| x.status = status);
            (format!("card {} {status}", c.id), vec![c.person_id])
        }
        5 => {
            let Some(c) = pick(rng, &data.credentials) else {
                return ("no card".into(), vec![]);
            };
            data.credentials
                .iter_mut()
                .filter(|x| x.id == c.id)
                .for_each(|x| x.person_id = someone);
            (
                format!("card {} moves from {} to {someone}", c.id, c.person_id),
                vec![someone, c.person_id],
            )
        }
        6 => {
            let level = LEVELS[rng.random_range(0..LEVELS.len())];
            if data
                .entitlements
                .iter()
                .any(|e| e.person_id == someone && e.level_id == level)
            {
                return ("already held".into(), vec![]);
            }
            let id = new_id();
            data.entitlements.push(Entitlement {
                id,
                person_id: someone,
                level_id: level,
                valid_until: valid_until(rng),
            });
            (
                format!("entitlement {id}: {someone} to level {level}"),
                vec![someone],
            )
        }
        7 => {
            let Some(e) = pick(rng, &data.entitlements) else {
                return ("no entitlement".into(), vec![]);
            };
            data.entitlements.retain(|x| x.id != e.id);
            (format!("entitlement {} removed", e.id), vec![e.person_id])
        }
        8 => {
            let id = new_id();
            data.people.push(Person {
                id,
                employee_id: format!("E{id}"),
                name: format!("Person {}", 1000 - id),
                status: PersonStatus::Active,
                valid_from: None,
                valid_until: None,
            });
            let card = new_id();
            keys.push(uid(card));
            data.credentials.push(Credential {
                id: card,
                person_id: id,
                key: uid(card),
                pin_hash: None,
                status: CredentialStatus::Active,
                valid_until: None,
            });
            let grant = new_id();
            data.entitlements.push(Entitlement {
                id: grant,
                person_id: id,
                level_id: LEVELS[rng.random_range(0..LEVELS.len())],
                valid_until: None,
            });
            (format!("new person {id}"), vec![id])
        }
        9 => {
            // The API removes the cards and entitlements first; the last change leaves no rows.
            data.people.retain(|p| p.id != someone);
            data.credentials.retain(|c| c.person_id != someone);
            data.entitlements.retain(|e| e.person_id != someone);
            (format!("person {someone} deleted"), vec![someone])
        }
        10 => {
            let id = new_id();
            data.people
                .iter_mut()
                .filter(|p| p.id == someone)
                .for_each(|p| p.employee_id = format!("X{id}"));
            (format!("person {someone} is X{id}"), vec![someone])
        }
        _ => {
            let Some(other) = pick(rng, &person_ids).filter(|o| *o != someone) else {
                return ("no one to swap with".into(), vec![]);
            };
            let a = data
                .people
                .iter()
                .position(|p| p.id == someone)
                .unwrap_or(0);
            let b = data.people.iter().position(|p| p.id == other).unwrap_or(0);
            let (ea, eb) = (
                data.people[a].employee_id.clone(),
                data.people[b].employee_id.clone(),
            );
            data.people[a].employee_id = eb;
            data.people[b].employee_id = ea;
            (
                format!("people {someone} and {other} swap employee ids"),
                vec![someone, other],
            )
        }
    }
}

#[test]
fn changes_laid_over_decide_as_a_full_compile() {
    for seed in 0..6 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut fixture = building();
        let mut keys = Vec::new();
        for p in 1..=8 {
            fixture = fixture
                .person(p)
                .grant(100 + p, p, LEVELS[p as usize % LEVELS.len()], None);
            let key = uid(200 + p);
            keys.push(key.clone());
            fixture = fixture.with(|d| {
                d.credentials.push(Credential {
                    id: 200 + p,
                    person_id: p,
                    key,
                    pin_hash: None,
                    status: CredentialStatus::Active,
                    valid_until: None,
                })
            });
        }
        let mut data = fixture.data;
        keys.push(uid(9999));
        let mut next_id = 1000;
        let mut laid = Snapshot::compile(&data, WED_10).unwrap();
        let mut people_ever: Vec<i64> = (1..=8).collect();
        for step in 0..60 {
            let (what, people) = change(&mut rng, &mut data, &mut next_id, &mut keys);
            let step = format!("seed {seed} step {step}: {what}");
            laid = laid
                .with_people(&records(&data, &people))
                .unwrap_or_else(|e| panic!("{step}: {e}"));
            assert!(laid.is_patched() || people.is_empty(), "{step}");
            let compiled = Snapshot::compile(&data, WED_10).unwrap();
            people_ever.extend(people.iter().copied());
            people_ever.sort_unstable();
            people_ever.dedup();
            assert_same(&laid, &compiled, &keys, &people_ever, next_id, &step);
            // Now and then the policy is compiled again under the changes, as `refresh` does.
            if rng.random_range(0..10) == 0 {
                laid = compiled;
            }
        }
    }
}

#[test]
fn a_card_another_person_holds_is_left_to_a_full_compile() {
    let data = building()
        .person(1)
        .person(2)
        .card(11, 1, "0A0B")
        .with(|d| d.credentials[0].key = CredentialKey::card("0A0B").unwrap())
        .data;
    let snap = Snapshot::compile(&data, WED_10).unwrap();
    // Person 2 now holds person 1's card, but person 1 is not laid over with them.
    let mut moved = data.clone();
    moved.credentials[0].person_id = 2;
    let refused = snap.with_people(&records(&moved, &[2]));
    assert!(
        matches!(refused, Err(PatchError::KeyTaken { id: 11, .. })),
        "{refused:?}"
    );
    // With both people, it is laid over; and a level the snapshot lacks is refused.
    let laid = snap.with_people(&records(&moved, &[2, 1])).unwrap();
    assert_eq!(
        laid.credential(&CredentialKey::card("0a0b").unwrap())
            .map(|c| c.person_id),
        Some(2)
    );
    moved.entitlements.push(Entitlement {
        id: 5,
        person_id: 2,
        level_id: 77,
        valid_until: None,
    });
    let refused = snap.with_people(&records(&moved, &[2, 1]));
    assert!(
        matches!(refused, Err(PatchError::UnknownLevel { level_id: 77, .. })),
        "{refused:?}"
    );
}
