//! Tests of role mining: parsing, exactness, known optima, tolerance, the policy matrix.

use super::*;
use crate::policy::model::{
    AccessLevel, AntiPassback, Door, DoorMode, Entitlement, LevelItem, Person, Sensitivity, Zone,
};
use chrono::TimeZone;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const HC: &[u8] = include_bytes!("../../tests/data/rolemining/hc.txt");
const DOMINO: &[u8] = include_bytes!("../../tests/data/rolemining/domino.txt");

/// A matrix from people's permission lists (people and permissions numbered from 0).
fn matrix(rows: &[&[u32]]) -> Matrix {
    let permissions = rows
        .iter()
        .flat_map(|r| r.iter())
        .max()
        .map_or(0, |m| m + 1);
    Matrix::new(
        (0..rows.len()).map(|i| format!("p{i}")).collect(),
        (0..permissions).map(|i| format!("d{i}")).collect(),
        rows.iter()
            .enumerate()
            .flat_map(|(u, r)| r.iter().map(move |&p| (u as u32, p))),
    )
}

fn exact(m: &Matrix) -> RoleSet {
    mine(m, Mode::Exact, &mut |_| {})
}

/// Checks everything an exact result claims, independently of `mine`.
fn assert_exact(m: &Matrix, set: &RoleSet) {
    let check = verify(m, &set.roles);
    assert!(check.exact(), "{check:?}");
    assert!(set.exact);
    assert_eq!(set.covered, m.assignments());
    assert!(set.exceptions.is_empty());
    // Each role is given to exactly the people who hold all of it.
    for role in &set.roles {
        assert!(!role.permissions.is_empty());
        let holders: Vec<u32> = (0..m.people().len() as u32)
            .filter(|&u| role.permissions.iter().all(|p| m.row(u).contains(p)))
            .collect();
        assert_eq!(role.people, holders);
    }
}

/// The fewest roles covering `m` exactly, by trying every set of closed roles (tiny
/// matrices only).
fn brute_force_optimum(m: &Matrix) -> usize {
    let n = m.people().len();
    // Closed sets: intersections of non-empty subsets of rows.
    let mut closed: HashSet<Vec<u32>> = HashSet::new();
    for mask in 1u32..(1 << n) {
        let mut set: Option<Vec<u32>> = None;
        for u in 0..n {
            if mask >> u & 1 == 1 {
                let row = m.row(u as u32).to_vec();
                set = Some(match set {
                    None => row,
                    Some(s) => intersect(&s, &row),
                });
            }
        }
        if let Some(s) = set.filter(|s| !s.is_empty()) {
            closed.insert(s);
        }
    }
    let closed: Vec<Vec<u32>> = closed.into_iter().collect();
    let columns = transpose(&m.rows, m.permissions().len());
    let roles: Vec<Role> = closed
        .iter()
        .map(|p| Role {
            permissions: p.clone(),
            people: holders_in(m, &columns, p),
        })
        .collect();
    for k in 0..=roles.len() {
        let mut pick: Vec<usize> = (0..k).collect();
        loop {
            let chosen: Vec<Role> = pick.iter().map(|&i| roles[i].clone()).collect();
            if verify(m, &chosen).exact() {
                return k;
            }
            // Next combination.
            let mut i = k;
            loop {
                if i == 0 {
                    break;
                }
                i -= 1;
                if pick[i] < roles.len() - k + i {
                    pick[i] += 1;
                    for j in i + 1..k {
                        pick[j] = pick[j - 1] + 1;
                    }
                    break;
                }
                if i == 0 {
                    i = usize::MAX;
                    break;
                }
            }
            if k == 0 || i == usize::MAX {
                break;
            }
        }
    }
    roles.len()
}

#[test]
fn parses_the_hp_format() {
    let m = Matrix::parse(b"# a comment\n  1   2\n1 3\r\n\n2\t2\n1 2\n10 3\n").unwrap();
    assert_eq!(m.people(), ["1", "2", "10"]);
    assert_eq!(m.permissions(), ["2", "3"]);
    assert_eq!(m.assignments(), 4, "the repeated `1 2` counts once");
    assert_eq!(m.row(0), [0, 1]);
    assert_eq!(m.row(1), [0]);
    assert_eq!(m.row(2), [1]);
}

#[test]
fn bad_lines_are_named() {
    let cases: &[(&[u8], usize, &str)] = &[
        (b"1 2\n3\n", 2, "found 1 field"),
        (b"1 2\n1 2 3\n", 2, "found 3 fields"),
        (
            b"1 2\n\n1 x\n",
            3,
            "permission must be a positive whole number, not 'x'",
        ),
        (
            b"0 1\n",
            1,
            "person must be a positive whole number, not '0'",
        ),
        (b"-1 1\n", 1, "person must be"),
        (b"1 99999999999999999999999\n", 1, "permission must be"),
        (b"1 2\n1 \xff\n", 2, "not UTF-8"),
    ];
    for (text, line, words) in cases {
        let err = Matrix::parse(text).unwrap_err();
        assert!(
            matches!(err, MatrixError::Line { line: l, .. } if l == *line),
            "{err} for {:?}",
            String::from_utf8_lossy(text)
        );
        let message = err.to_string();
        assert!(message.starts_with(&format!("line {line}: ")), "{message}");
        assert!(message.contains(words), "{message}");
    }
    assert_eq!(Matrix::parse(b"").unwrap_err(), MatrixError::Empty);
    assert_eq!(
        Matrix::parse(b"# only a comment\n\n").unwrap_err(),
        MatrixError::Empty
    );
}

#[test]
fn tolerance_must_be_a_share() {
    assert_eq!("0.05".parse::<Tolerance>().unwrap().share(), 0.05);
    assert_eq!("0".parse::<Tolerance>().unwrap().share(), 0.0);
    for bad in ["1", "1.5", "-0.1", "NaN", "inf", "five"] {
        assert_eq!(bad.parse::<Tolerance>(), Err(ToleranceError), "{bad}");
    }
}

#[test]
fn people_with_the_same_doors_share_one_role() {
    let m = matrix(&[&[0, 1, 2], &[0, 1, 2], &[0, 1, 2]]);
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 1);
    assert_eq!(set.roles[0].permissions, [0, 1, 2]);
    assert_eq!(set.roles[0].people, [0, 1, 2]);
}

#[test]
fn a_person_who_is_the_union_of_others_needs_no_role_of_their_own() {
    // p2 holds what p0 and p1 hold together: two roles, p2 gets both.
    let m = matrix(&[&[0, 1], &[1, 2], &[0, 1, 2]]);
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 2);
    let given: Vec<usize> = set
        .roles
        .iter()
        .filter(|r| r.people.contains(&2))
        .map(|r| r.permissions.len())
        .collect();
    assert_eq!(given, [2, 2]);
}

#[test]
fn finds_roles_that_are_no_persons_whole_set() {
    // Five people, seven doors; four roles ({0,1}, {2,3}, {4,5}, {6}) suffice and four
    // assignments are pairwise incompatible, so four is the minimum. Neither "one role per
    // person" (5) nor "one role per door" (7) finds it.
    let m = matrix(&[
        &[0, 1, 2, 3],
        &[0, 1, 4, 5],
        &[2, 3, 4, 5],
        &[0, 1, 6],
        &[2, 3, 6],
    ]);
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 4);
    assert_eq!(brute_force_optimum(&m), 4);
}

#[test]
fn a_crown_needs_one_role_per_door() {
    let m = matrix(&[&[0, 1], &[1, 2], &[0, 2]]);
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 3);
}

#[test]
fn people_without_doors_and_an_empty_matrix() {
    let m = Matrix::new(vec!["a".into(), "b".into()], vec!["d".into()], [(1, 0)]);
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 1);
    assert_eq!(set.roles[0].people, [1]);

    let empty = Matrix::new(vec![], vec![], []);
    let set = exact(&empty);
    assert!(set.exact);
    assert!(set.roles.is_empty());
    assert_eq!(set.coverage(), 1.0);
}

#[test]
fn random_matrices_are_covered_exactly_and_near_the_minimum() {
    let mut rng = StdRng::seed_from_u64(12);
    let mut at_optimum = 0;
    let trials = 150;
    for _ in 0..trials {
        let people = rng.random_range(2..=6);
        let doors = rng.random_range(2..=7);
        let density = rng.random_range(0.2..0.8);
        let rows: Vec<Vec<u32>> = (0..people)
            .map(|_| (0..doors).filter(|_| rng.random_bool(density)).collect())
            .collect();
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let m = matrix(&refs);
        let set = exact(&m);
        assert_exact(&m, &set);
        let optimum = brute_force_optimum(&m);
        assert!(set.roles.len() >= optimum, "{rows:?}");
        assert!(
            set.roles.len() <= optimum + 1,
            "{rows:?}: {} vs {optimum}",
            set.roles.len()
        );
        if set.roles.len() == optimum {
            at_optimum += 1;
        }
    }
    assert!(
        at_optimum * 100 >= trials * 95,
        "{at_optimum} of {trials} at the minimum"
    );
}

#[test]
fn random_larger_matrices_are_covered_exactly() {
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..8 {
        // People drawn from a few hidden roles plus noise: the shape of real sites.
        let doors = 40;
        let hidden: Vec<Vec<u32>> = (0..10)
            .map(|_| (0..doors).filter(|_| rng.random_bool(0.1)).collect())
            .collect();
        let rows: Vec<Vec<u32>> = (0..120)
            .map(|_| {
                let mut row: Vec<u32> = Vec::new();
                for role in &hidden {
                    if rng.random_bool(0.25) {
                        row.extend(role);
                    }
                }
                if rng.random_bool(0.3) {
                    row.push(rng.random_range(0..doors));
                }
                row.sort_unstable();
                row.dedup();
                row
            })
            .collect();
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let m = matrix(&refs);
        let set = exact(&m);
        assert_exact(&m, &set);
    }
}

#[test]
fn hc_is_covered_exactly_by_its_known_minimum_of_14() {
    let m = Matrix::parse(HC).unwrap();
    assert_eq!(
        (m.people().len(), m.permissions().len(), m.assignments()),
        (46, 46, 1486)
    );
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 14);
}

#[test]
fn domino_is_covered_exactly_by_its_known_minimum_of_20() {
    let m = Matrix::parse(DOMINO).unwrap();
    assert_eq!(
        (m.people().len(), m.permissions().len(), m.assignments()),
        (79, 231, 730)
    );
    let set = exact(&m);
    assert_exact(&m, &set);
    assert_eq!(set.roles.len(), 20);
}

#[test]
fn tolerance_trades_roles_for_stated_exceptions() {
    let m = Matrix::parse(DOMINO).unwrap();
    let full = exact(&m);
    let tolerance = Tolerance::new(0.05).unwrap();
    let set = mine(&m, Mode::Tolerant(tolerance), &mut |_| {});
    assert!(
        set.roles.len() < full.roles.len(),
        "{} roles",
        set.roles.len()
    );
    assert!(!set.exact);
    assert_eq!(set.mode, Mode::Tolerant(tolerance));
    let check = verify(&m, &set.roles);
    assert_eq!(
        check.over_granted, 0,
        "roles never grant a door a person lacks"
    );
    assert_eq!(check.covered, set.covered);
    assert_eq!(set.exceptions.len(), m.assignments() - set.covered);
    assert!(set.exceptions.len() as f64 <= 0.05 * m.assignments() as f64);
    assert!(set.coverage() >= 0.95);
    // The exceptions are exactly the assignments no role grants.
    for &(person, permission) in &set.exceptions {
        assert!(m.row(person).contains(&permission));
        assert!(
            !set.roles
                .iter()
                .any(|r| r.people.contains(&person) && r.permissions.contains(&permission))
        );
    }
    // A zero tolerance is the exact cover.
    let zero = mine(
        &m,
        Mode::Tolerant(Tolerance::new(0.0).unwrap()),
        &mut |_| {},
    );
    assert!(zero.exact);
    assert_eq!(zero.roles.len(), full.roles.len());
}

#[test]
fn verify_counts_over_grants_and_gaps() {
    let m = matrix(&[&[0, 1], &[1]]);
    let roles = [Role {
        permissions: vec![0, 1],
        people: vec![0, 1],
    }];
    let check = verify(&m, &roles);
    assert_eq!(
        check,
        Verification {
            covered: 3,
            uncovered: 0,
            over_granted: 1
        }
    );
    assert!(!check.exact());
    let check = verify(&m, &roles[..0]);
    assert_eq!(
        check,
        Verification {
            covered: 0,
            uncovered: 3,
            over_granted: 0
        }
    );
}

#[test]
fn progress_is_reported() {
    let m = Matrix::parse(HC).unwrap();
    let mut seen = Vec::new();
    mine(&m, Mode::Exact, &mut |p| seen.push(p));
    assert!(matches!(seen.first(), Some(Progress::Reducing { pass: 0 })));
    assert_eq!(seen.last(), Some(&Progress::Verifying));
}

#[test]
fn the_policy_matrix_is_who_can_open_which_door() {
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
    let person = |id: i64, status: PersonStatus, valid_until| Person {
        id,
        employee_id: format!("E{id}"),
        name: format!("Person {id}"),
        status,
        valid_from: None,
        valid_until,
    };
    let door = |id: i64, zone_id: i64| Door {
        id,
        zone_id,
        name: format!("door {id}"),
        unlock_ms: 3000,
        held_open_s: 30,
        mode: DoorMode::Normal,
        free_access_schedule_id: None,
        sensitivity: Sensitivity::Normal,
    };
    let zone = |id: i64, parent_id| Zone {
        id,
        site_id: 1,
        parent_id,
        name: format!("zone {id}"),
        antipassback: AntiPassback::Off,
        presence_reset: None,
    };
    let level = |id: i64, targets: &[Target]| AccessLevel {
        id,
        name: format!("level {id}"),
        items: targets
            .iter()
            .map(|&target| LevelItem {
                target,
                schedule_id: 1,
            })
            .collect(),
    };
    let entitlement = |id: i64, person_id, level_id, valid_until| Entitlement {
        id,
        person_id,
        level_id,
        valid_until,
    };
    let past = Some(now - chrono::Duration::days(1));
    let policy = PolicyData {
        zones: vec![zone(1, None), zone(2, Some(1))],
        doors: vec![door(10, 1), door(11, 2), door(12, 2), door(13, 1)],
        people: vec![
            person(1, PersonStatus::Active, None),
            person(2, PersonStatus::Active, None),
            person(3, PersonStatus::Suspended, None),
            person(4, PersonStatus::Active, past),
        ],
        levels: vec![
            level(1, &[Target::Zone(1)]),
            level(2, &[Target::Door(13)]),
            level(3, &[Target::Zone(2)]),
        ],
        entitlements: vec![
            entitlement(1, 1, 1, None),
            entitlement(2, 2, 3, None),
            entitlement(3, 2, 2, past),
            entitlement(4, 3, 1, None),
            entitlement(5, 4, 1, None),
        ],
        ..PolicyData::default()
    };
    let pm = matrix_from_policy(&policy, now);
    assert_eq!(
        pm.matrix.people(),
        ["E1", "E2"],
        "suspended and expired people are left out"
    );
    assert_eq!(pm.person_ids, [1, 2]);
    assert_eq!(pm.door_ids, [10, 11, 12, 13]);
    // Zone 1 holds door 10 and 13, and its child zone 2 holds doors 11 and 12.
    assert_eq!(pm.matrix.row(0), [0, 1, 2, 3]);
    // Person 2: zone 2 only; the expired entitlement to door 13 does not count.
    assert_eq!(pm.matrix.row(1), [1, 2]);
    let set = exact(&pm.matrix);
    assert_exact(&pm.matrix, &set);
    assert_eq!(set.roles.len(), 2);
}
