//! Role mining: proposes access levels (roles) from a person × door matrix, exactly (each
//! person's doors are the union of their roles) or with a stated share of exceptions.
//!
//! Pure functions, no I/O. [`Matrix`] is the input (parsed from the HP benchmark's
//! `person permission` lines, or built from the live policy by [`matrix_from_policy`]),
//! [`mine`] proposes a [`RoleSet`], and [`verify`] checks any proposal independently.
//!
//! How the exact cover is found (the minimum is NP-hard, so this is a heuristic whose
//! reductions are exact; Ene et al., SACMAT 2008):
//! 1. Reductions that never change the minimum, repeated until none applies: a person
//!    whose still-uncovered doors are all uncovered doors of people whose doors are a
//!    subset of theirs is set aside (they will receive those people's roles), and the same
//!    for doors over people; an uncovered assignment whose maximal role is unique (every
//!    holder of the door holds all the person's doors) takes that role. The roles of the
//!    reduced problem extend back to everyone set aside.
//! 2. What remains is split into connected parts, and each part is covered greedily by
//!    closed candidate roles (people's door sets and their pairwise intersections), from
//!    the people's side and from the doors' side, keeping the smaller cover; then seeded
//!    randomised greedy rounds within a work budget, and a local step that replaces two
//!    roles by one where all that only they grant fits in one role. Roles that cover
//!    nothing on their own are dropped.
//!
//! Proposed roles never grant a door a person lacks: a role is given to exactly the people
//! who hold all its doors. Tolerant mode drops the roles that cover least on their own
//! until the stated share of assignments is left as individual exceptions.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Utc};

use crate::policy::model::{PersonStatus, PolicyData, Target};

/// A person × permission (door) matrix: who holds what. Rows are sorted and free of
/// duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    people: Vec<String>,
    permissions: Vec<String>,
    rows: Vec<Vec<u32>>,
    assignments: usize,
}

/// A matrix file line that is not `person permission`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MatrixError {
    #[error("line {line}: {problem}")]
    Line { line: usize, problem: String },
    #[error("the matrix has no assignments (no `person permission` lines)")]
    Empty,
    #[error("more than {max} distinct people or permissions")]
    TooLarge { max: usize },
}

/// The most people or permissions a matrix may name (indexes are 32-bit).
const MAX_LABELS: usize = u32::MAX as usize;

impl Matrix {
    /// A matrix of `people` and `permissions` (labels) and the assignments between them,
    /// as (person index, permission index) pairs. Pairs naming an index past the labels
    /// are dropped; duplicates count once.
    pub fn new(
        people: Vec<String>,
        permissions: Vec<String>,
        assignments: impl IntoIterator<Item = (u32, u32)>,
    ) -> Matrix {
        let mut rows = vec![Vec::new(); people.len()];
        for (person, permission) in assignments {
            if (person as usize) < people.len() && (permission as usize) < permissions.len() {
                rows[person as usize].push(permission);
            }
        }
        let mut total = 0;
        for row in &mut rows {
            row.sort_unstable();
            row.dedup();
            total += row.len();
        }
        Matrix {
            people,
            permissions,
            rows,
            assignments: total,
        }
    }

    /// Parses the HP role-mining format: one assignment per line, `person permission`, two
    /// positive integers separated by spaces or tabs. Blank lines and lines starting with
    /// `#` are skipped; a repeated assignment counts once. Any other line is an error that
    /// names it. People and permissions are labelled by their numbers, in numeric order.
    pub fn parse(text: &[u8]) -> Result<Matrix, MatrixError> {
        let mut pairs: Vec<(u64, u64)> = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            let bad = |problem: String| MatrixError::Line { line, problem };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            let Ok(text) = std::str::from_utf8(raw) else {
                return Err(bad("not UTF-8 text".into()));
            };
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = text.split_whitespace().collect();
            if fields.len() != 2 {
                return Err(bad(format!(
                    "expected `person permission` (two numbers), found {} field{}: {}",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" },
                    shorten(text)
                )));
            }
            let number = |what: &str, field: &str| -> Result<u64, MatrixError> {
                match field.parse::<u64>() {
                    Ok(n) if n >= 1 => Ok(n),
                    _ => Err(bad(format!(
                        "the {what} must be a positive whole number, not '{}'",
                        shorten(field)
                    ))),
                }
            };
            pairs.push((
                number("person", fields[0])?,
                number("permission", fields[1])?,
            ));
        }
        if pairs.is_empty() {
            return Err(MatrixError::Empty);
        }
        let people = labels(pairs.iter().map(|p| p.0))?;
        let permissions = labels(pairs.iter().map(|p| p.1))?;
        let assignments: Vec<(u32, u32)> = pairs
            .iter()
            .filter_map(|(u, p)| Some((index_of(&people.1, *u)?, index_of(&permissions.1, *p)?)))
            .collect();
        Ok(Matrix::new(people.0, permissions.0, assignments))
    }

    pub fn people(&self) -> &[String] {
        &self.people
    }

    pub fn permissions(&self) -> &[String] {
        &self.permissions
    }

    /// Person `person`'s permissions, sorted.
    pub fn row(&self, person: u32) -> &[u32] {
        self.rows.get(person as usize).map_or(&[], Vec::as_slice)
    }

    /// How many (person, permission) assignments the matrix holds.
    pub fn assignments(&self) -> usize {
        self.assignments
    }

    fn holds(&self, person: u32, permission: u32) -> bool {
        self.row(person).binary_search(&permission).is_ok()
    }
}

/// The distinct numbers, sorted, as labels, and the same numbers for lookups.
fn labels(numbers: impl Iterator<Item = u64>) -> Result<(Vec<String>, Vec<u64>), MatrixError> {
    let mut sorted: Vec<u64> = numbers.collect();
    sorted.sort_unstable();
    sorted.dedup();
    if sorted.len() > MAX_LABELS {
        return Err(MatrixError::TooLarge { max: MAX_LABELS });
    }
    Ok((sorted.iter().map(u64::to_string).collect(), sorted))
}

fn index_of(sorted: &[u64], n: u64) -> Option<u32> {
    sorted.binary_search(&n).ok().map(|i| i as u32)
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}…")
    }
}

/// How the roles must cover the matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Every person's permissions are exactly the union of their roles.
    Exact,
    /// At most this share of the assignments (0 to 1) may be left out of the roles, as
    /// individual exceptions, to need fewer roles. Roles never over-grant.
    Tolerant(Tolerance),
}

/// A share of assignments, from 0 (none) to below 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Tolerance(f64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a tolerance is a share of the assignments from 0 up to (not including) 1, such as 0.05")]
pub struct ToleranceError;

impl Tolerance {
    pub fn new(share: f64) -> Result<Tolerance, ToleranceError> {
        if share.is_finite() && (0.0..1.0).contains(&share) {
            Ok(Tolerance(share))
        } else {
            Err(ToleranceError)
        }
    }

    pub fn share(self) -> f64 {
        self.0
    }
}

impl std::str::FromStr for Tolerance {
    type Err = ToleranceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let share: f64 = s.trim().parse().map_err(|_| ToleranceError)?;
        Tolerance::new(share)
    }
}

/// One proposed role: its permissions and the people it is given to (all who hold every
/// one of its permissions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub permissions: Vec<u32>,
    pub people: Vec<u32>,
}

impl Role {
    /// The assignments this role grants: people × permissions.
    pub fn assignments(&self) -> usize {
        self.people.len() * self.permissions.len()
    }
}

/// The outcome of [`mine`].
#[derive(Debug, Clone, PartialEq)]
pub struct RoleSet {
    /// Largest first (by the assignments each grants).
    pub roles: Vec<Role>,
    /// The matrix's assignments.
    pub assignments: usize,
    /// Assignments that some role grants.
    pub covered: usize,
    /// Assignments that no role grants: left as individual grants (person, permission).
    pub exceptions: Vec<(u32, u32)>,
    /// Every person's permissions are exactly the union of their roles (checked by
    /// [`verify`], not assumed).
    pub exact: bool,
    /// The mode asked for.
    pub mode: Mode,
}

impl RoleSet {
    /// The share of assignments the roles grant (1 when the matrix is empty).
    pub fn coverage(&self) -> f64 {
        if self.assignments == 0 {
            1.0
        } else {
            self.covered as f64 / self.assignments as f64
        }
    }
}

/// How a role set compares to a matrix, computed from the roles' own people and
/// permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// Matrix assignments that some role grants.
    pub covered: usize,
    /// Matrix assignments that no role grants.
    pub uncovered: usize,
    /// (person, permission) pairs a role grants that the matrix does not hold.
    pub over_granted: usize,
}

impl Verification {
    pub fn exact(&self) -> bool {
        self.uncovered == 0 && self.over_granted == 0
    }
}

/// Checks roles against a matrix: what they grant, what they miss, and what they grant
/// beyond the matrix. Independent of how the roles were found.
pub fn verify(matrix: &Matrix, roles: &[Role]) -> Verification {
    let mut granted: Vec<Vec<u32>> = vec![Vec::new(); matrix.rows.len()];
    let mut over_granted = 0;
    for role in roles {
        for &person in &role.people {
            for &permission in &role.permissions {
                if matrix.holds(person, permission) {
                    granted[person as usize].push(permission);
                } else {
                    over_granted += 1;
                }
            }
        }
    }
    let mut covered = 0;
    for row in &mut granted {
        row.sort_unstable();
        row.dedup();
        covered += row.len();
    }
    Verification {
        covered,
        uncovered: matrix.assignments - covered,
        over_granted,
    }
}

/// What [`mine`] is doing, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Reductions: `pass` passes done so far.
    Reducing {
        pass: usize,
    },
    /// Covering the parts left after the reductions.
    Covering {
        done: usize,
        total: usize,
    },
    /// Dropping roles for the tolerance.
    Tolerating {
        roles: usize,
    },
    Verifying,
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Reducing { pass } => write!(f, "reducing (pass {})", pass + 1),
            Progress::Covering { done, total } => write!(f, "covering part {done} of {total}"),
            Progress::Tolerating { roles } => write!(f, "dropping roles ({roles} left)"),
            Progress::Verifying => write!(f, "verifying"),
        }
    }
}

/// Proposes roles for the matrix in the given mode. `progress` is called now and then.
pub fn mine(matrix: &Matrix, mode: Mode, progress: &mut dyn FnMut(Progress)) -> RoleSet {
    let exact_roles = exact_cover(matrix, progress);
    let roles = match mode {
        Mode::Exact => exact_roles,
        Mode::Tolerant(tolerance) => tolerate(matrix, exact_roles, tolerance, progress),
    };
    progress(Progress::Verifying);
    let mut roles = roles;
    roles.sort_by(|a, b| {
        b.assignments()
            .cmp(&a.assignments())
            .then_with(|| a.permissions.cmp(&b.permissions))
    });
    let check = verify(matrix, &roles);
    RoleSet {
        exceptions: exceptions(matrix, &roles),
        exact: check.exact(),
        covered: check.covered,
        assignments: matrix.assignments,
        roles,
        mode,
    }
}

/// The assignments no role grants.
fn exceptions(matrix: &Matrix, roles: &[Role]) -> Vec<(u32, u32)> {
    let mut granted: Vec<Vec<u32>> = vec![Vec::new(); matrix.rows.len()];
    for role in roles {
        for &person in &role.people {
            granted[person as usize].extend_from_slice(&role.permissions);
        }
    }
    let mut out = Vec::new();
    for (person, row) in matrix.rows.iter().enumerate() {
        let g = &mut granted[person];
        g.sort_unstable();
        g.dedup();
        for &permission in row {
            if g.binary_search(&permission).is_err() {
                out.push((person as u32, permission));
            }
        }
    }
    out
}

/// People who hold every permission of `set` (`set` non-empty, sorted).
fn holders_in(matrix: &Matrix, columns: &[Vec<u32>], set: &[u32]) -> Vec<u32> {
    let Some(&rarest) = set.iter().min_by_key(|&&p| columns[p as usize].len()) else {
        return Vec::new();
    };
    columns[rarest as usize]
        .iter()
        .copied()
        .filter(|&person| is_sorted_subset(set, matrix.row(person)))
        .collect()
}

fn is_sorted_subset(small: &[u32], big: &[u32]) -> bool {
    let mut j = 0;
    for &x in small {
        while j < big.len() && big[j] < x {
            j += 1;
        }
        if j == big.len() || big[j] != x {
            return false;
        }
        j += 1;
    }
    true
}

/// The exact cover: reductions, then a greedy cover of what is left, extended back.
fn exact_cover(matrix: &Matrix, progress: &mut dyn FnMut(Progress)) -> Vec<Role> {
    // People with the same permissions are one row for the search; roles are given to
    // every holder at the end anyway.
    let mut unique: HashMap<&[u32], u32> = HashMap::new();
    let mut rows: Vec<Vec<u32>> = Vec::new();
    for row in &matrix.rows {
        if !row.is_empty() && !unique.contains_key(row.as_slice()) {
            unique.insert(row.as_slice(), rows.len() as u32);
            rows.push(row.clone());
        }
    }
    let mut engine = Reducer::new(&rows, matrix.permissions.len());
    engine.reduce(progress);
    let parts = engine.parts();
    let total = parts.len();
    // The search budgets are for the whole matrix, shared by the parts in proportion to
    // the assignments each must still cover.
    let weights: Vec<usize> = parts
        .iter()
        .map(|(people, _)| {
            people
                .iter()
                .map(|&u| engine.half(Side::People).required_count[u as usize] as usize)
                .sum()
        })
        .collect();
    let total_weight = weights.iter().sum::<usize>().max(1);
    let mut bicliques: Vec<Biclique> = Vec::new();
    for (done, (people, permissions)) in parts.into_iter().enumerate() {
        progress(Progress::Covering { done, total });
        let budget = Budget::share(weights[done], total_weight);
        let by_people = engine.residual(Side::People, &people, &permissions);
        let by_permissions = engine.residual(Side::Permissions, &permissions, &people);
        let a = by_people.cover(budget);
        let b = by_permissions.cover(budget);
        if a.len() <= b.len() {
            bicliques.extend(a);
        } else {
            bicliques.extend(b.into_iter().map(|(p, u)| (u, p)));
        }
    }
    progress(Progress::Covering { done: total, total });
    let bicliques = engine.unwind(bicliques);

    // Roles as permission sets, each given to all its holders; a role whose every grant
    // another role also makes is dropped.
    let columns = transpose(&matrix.rows, matrix.permissions.len());
    let mut seen: HashSet<Vec<u32>> = HashSet::new();
    let mut roles: Vec<Role> = Vec::new();
    for (_, permissions) in bicliques {
        if !permissions.is_empty() && seen.insert(permissions.clone()) {
            let people = holders_in(matrix, &columns, &permissions);
            roles.push(Role {
                permissions,
                people,
            });
        }
    }
    drop_redundant(matrix, roles)
}

/// Drops roles all of whose grants other roles make too, smallest first.
fn drop_redundant(matrix: &Matrix, mut roles: Vec<Role>) -> Vec<Role> {
    let index = EdgeIndex::new(matrix);
    let mut count = vec![0u32; matrix.assignments];
    let edges: Vec<Vec<usize>> = roles.iter().map(|r| index.edges_of(matrix, r)).collect();
    for list in &edges {
        for &e in list {
            count[e] += 1;
        }
    }
    let mut order: Vec<usize> = (0..roles.len()).collect();
    order.sort_by_key(|&i| roles[i].assignments());
    let mut keep = vec![true; roles.len()];
    for i in order {
        if edges[i].iter().all(|&e| count[e] > 1) {
            for &e in &edges[i] {
                count[e] -= 1;
            }
            keep[i] = false;
        }
    }
    let mut i = 0;
    roles.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    roles
}

/// Numbers the matrix's assignments 0..n (row by row) so that per-assignment counts are
/// a flat array.
struct EdgeIndex {
    start: Vec<usize>,
}

impl EdgeIndex {
    fn new(matrix: &Matrix) -> EdgeIndex {
        let mut start = Vec::with_capacity(matrix.rows.len() + 1);
        let mut at = 0;
        for row in &matrix.rows {
            start.push(at);
            at += row.len();
        }
        start.push(at);
        EdgeIndex { start }
    }

    /// The assignments a role grants that the matrix holds.
    fn edges_of(&self, matrix: &Matrix, role: &Role) -> Vec<usize> {
        let mut out = Vec::with_capacity(role.assignments());
        for &person in &role.people {
            let row = matrix.row(person);
            for &permission in &role.permissions {
                if let Ok(k) = row.binary_search(&permission) {
                    out.push(self.start[person as usize] + k);
                }
            }
        }
        out
    }
}

/// Tolerant mode: from the exact roles, the fewest that leave at most the tolerated share
/// uncovered, by two greedy orders (drop the role covering least on its own; add the role
/// covering most that is still uncovered), keeping the better.
fn tolerate(
    matrix: &Matrix,
    roles: Vec<Role>,
    tolerance: Tolerance,
    progress: &mut dyn FnMut(Progress),
) -> Vec<Role> {
    let budget = (tolerance.share() * matrix.assignments as f64).floor() as usize;
    let index = EdgeIndex::new(matrix);
    let edges: Vec<Vec<usize>> = roles.iter().map(|r| index.edges_of(matrix, r)).collect();

    // Dropping: the role whose sole grants are fewest, while the budget allows.
    let mut count = vec![0u32; matrix.assignments];
    for list in &edges {
        for &e in list {
            count[e] += 1;
        }
    }
    let mut alive = vec![true; roles.len()];
    let mut left_out = 0;
    let mut kept = roles.len();
    loop {
        progress(Progress::Tolerating { roles: kept });
        let cheapest = (0..roles.len())
            .filter(|&i| alive[i])
            .map(|i| (edges[i].iter().filter(|&&e| count[e] == 1).count(), i))
            .min();
        match cheapest {
            Some((sole, i)) if left_out + sole <= budget => {
                alive[i] = false;
                kept -= 1;
                left_out += sole;
                for &e in &edges[i] {
                    count[e] -= 1;
                }
            }
            _ => break,
        }
    }
    let dropped: Vec<usize> = (0..roles.len()).filter(|&i| alive[i]).collect();

    // Adding: lazy greedy on new grants until all but the budget are covered.
    let need = matrix.assignments.saturating_sub(budget);
    let mut covered = vec![false; matrix.assignments];
    let mut heap: BinaryHeap<(usize, std::cmp::Reverse<usize>)> = edges
        .iter()
        .enumerate()
        .map(|(i, e)| (e.len(), std::cmp::Reverse(i)))
        .collect();
    let mut added = Vec::new();
    let mut n_covered = 0;
    while n_covered < need {
        let Some((gain, std::cmp::Reverse(i))) = heap.pop() else {
            break;
        };
        let now = edges[i].iter().filter(|&&e| !covered[e]).count();
        if now < gain {
            heap.push((now, std::cmp::Reverse(i)));
            continue;
        }
        if now == 0 {
            break;
        }
        for &e in &edges[i] {
            covered[e] = true;
        }
        n_covered += now;
        added.push(i);
    }

    let chosen = if added.len() < dropped.len() && n_covered >= need {
        added
    } else {
        dropped
    };
    let mut keep = vec![false; roles.len()];
    for i in chosen {
        keep[i] = true;
    }
    roles
        .into_iter()
        .zip(keep)
        .filter_map(|(role, k)| k.then_some(role))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The search. People and permissions are the two sides of a bipartite graph; a role is a
// biclique (people × permissions, every pair held). Everything below works on either side.

/// A role as (people, permissions) in the reducer's numbering.
type Biclique = (Vec<u32>, Vec<u32>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    People = 0,
    Permissions = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::People => Side::Permissions,
            Side::Permissions => Side::People,
        }
    }
}

/// Fixed-width bitsets, one per row, in one buffer.
#[derive(Debug, Clone)]
struct BitRows {
    width: usize,
    data: Vec<u64>,
}

impl BitRows {
    fn new(rows: usize, columns: usize) -> BitRows {
        let width = columns.div_ceil(64).max(1);
        BitRows {
            width,
            data: vec![0; rows * width],
        }
    }

    fn of(rows: &[Vec<u32>], columns: usize) -> BitRows {
        let mut bits = BitRows::new(rows.len(), columns);
        for (r, row) in rows.iter().enumerate() {
            for &c in row {
                bits.set(r, c);
            }
        }
        bits
    }

    fn row(&self, r: usize) -> &[u64] {
        &self.data[r * self.width..(r + 1) * self.width]
    }

    fn set(&mut self, r: usize, c: u32) {
        self.data[r * self.width + c as usize / 64] |= 1 << (c % 64);
    }

    /// Clears the bit; true if it was set.
    fn clear(&mut self, r: usize, c: u32) -> bool {
        let word = &mut self.data[r * self.width + c as usize / 64];
        let mask = 1 << (c % 64);
        let was = *word & mask != 0;
        *word &= !mask;
        was
    }

    fn get(&self, r: usize, c: u32) -> bool {
        self.data[r * self.width + c as usize / 64] >> (c % 64) & 1 == 1
    }
}

fn has_all(set: &[u32], bits: &[u64]) -> bool {
    set.iter()
        .all(|&c| bits[c as usize / 64] >> (c % 64) & 1 == 1)
}

fn transpose(rows: &[Vec<u32>], columns: usize) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); columns];
    for (r, row) in rows.iter().enumerate() {
        for &c in row {
            out[c as usize].push(r as u32);
        }
    }
    out
}

/// One side of the graph: each row's neighbours (all of them, alive or not), as lists and
/// bits; which of its edges must still be covered; which rows are still in play.
struct Half {
    rows: Vec<Vec<u32>>,
    bits: BitRows,
    required: BitRows,
    required_count: Vec<u32>,
    alive: Vec<bool>,
}

impl Half {
    fn new(rows: Vec<Vec<u32>>, columns: usize) -> Half {
        let bits = BitRows::of(&rows, columns);
        Half {
            required: bits.clone(),
            required_count: rows.iter().map(|r| r.len() as u32).collect(),
            alive: rows.iter().map(|r| !r.is_empty()).collect(),
            bits,
            rows,
        }
    }
}

/// What the reducer did, in order, so that the roles of the reduced problem can be
/// extended back.
enum Step {
    /// Set aside a row of this side; it receives every role within its neighbours.
    SetAside(Side, u32),
    /// Took this role because it was the only maximal one for an edge.
    Took(Biclique),
}

/// The reductions (see the module doc): a bipartite graph of allowed edges (held
/// assignments) and required ones (not covered yet).
struct Reducer {
    halves: [Half; 2],
    log: Vec<Step>,
}

impl Reducer {
    fn new(people: &[Vec<u32>], permissions: usize) -> Reducer {
        let columns = transpose(people, permissions);
        Reducer {
            halves: [
                Half::new(people.to_vec(), permissions),
                Half::new(columns, people.len()),
            ],
            log: Vec::new(),
        }
    }

    fn half(&self, side: Side) -> &Half {
        &self.halves[side as usize]
    }

    /// Marks an edge covered on both sides.
    fn cover(&mut self, person: u32, permission: u32) {
        let [people, permissions] = &mut self.halves;
        if people.required.clear(person as usize, permission) {
            people.required_count[person as usize] -= 1;
            permissions.required.clear(permission as usize, person);
            permissions.required_count[permission as usize] -= 1;
        }
    }

    fn cover_edge(&mut self, side: Side, row: u32, column: u32) {
        match side {
            Side::People => self.cover(row, column),
            Side::Permissions => self.cover(column, row),
        }
    }

    fn set_aside(&mut self, side: Side, row: u32) {
        self.halves[side as usize].alive[row as usize] = false;
        self.log.push(Step::SetAside(side, row));
        // Its edges are covered by the roles it will receive: no one else must cover them.
        let columns = self.half(side).rows[row as usize].clone();
        for column in columns {
            self.cover_edge(side, row, column);
        }
    }

    /// A row's neighbours that are still in play.
    fn alive_row(&self, side: Side, row: u32) -> Vec<u32> {
        let other = self.half(side.other());
        self.half(side).rows[row as usize]
            .iter()
            .copied()
            .filter(|&c| other.alive[c as usize])
            .collect()
    }

    fn alive_rows(&self, side: Side) -> Vec<Vec<u32>> {
        let half = self.half(side);
        (0..half.rows.len() as u32)
            .map(|r| {
                if half.alive[r as usize] {
                    self.alive_row(side, r)
                } else {
                    Vec::new()
                }
            })
            .collect()
    }

    fn reduce(&mut self, progress: &mut dyn FnMut(Progress)) {
        for pass in 0.. {
            progress(Progress::Reducing { pass });
            let a = self.set_aside_dominated(Side::People);
            let b = self.set_aside_dominated(Side::Permissions);
            let c = self.take_unique_roles();
            if a + b + c == 0 {
                break;
            }
        }
    }

    /// Sets aside every row whose required edges are all required edges of other rows
    /// whose neighbours are a subset of its own (one at a time, so two equal rows do not
    /// set each other aside). Rows with nothing required go too.
    fn set_aside_dominated(&mut self, side: Side) -> usize {
        let rows = self.alive_rows(side);
        let other_len = self.half(side.other()).rows.len();
        let mut degree = vec![0u32; other_len];
        for row in &rows {
            for &c in row {
                degree[c as usize] += 1;
            }
        }
        // A subset of row u contains its own rarest column, which u then has.
        let mut by_rarest: Vec<Vec<u32>> = vec![Vec::new(); other_len];
        for (r, row) in rows.iter().enumerate() {
            if let Some(&rarest) = row.iter().min_by_key(|&&c| degree[c as usize]) {
                by_rarest[rarest as usize].push(r as u32);
            }
        }
        let mut count = 0;
        let mut got = vec![false; other_len];
        let mut touched: Vec<u32> = Vec::new();
        for u in 0..rows.len() {
            let half = self.half(side);
            if !half.alive[u] {
                continue;
            }
            let need = half.required_count[u] as usize;
            let mut have = 0;
            if need > 0 {
                let bits_u = half.bits.row(u);
                let required_u = half.required.row(u);
                'scan: for &c in &rows[u] {
                    for &v in &by_rarest[c as usize] {
                        let v = v as usize;
                        if v == u || !half.alive[v] || rows[v].len() > rows[u].len() {
                            continue;
                        }
                        if !has_all(&rows[v], bits_u) {
                            continue;
                        }
                        for (k, (&a, &b)) in required_u.iter().zip(half.required.row(v)).enumerate()
                        {
                            let mut both = a & b;
                            while both != 0 {
                                let c = (k * 64) as u32 + both.trailing_zeros();
                                both &= both - 1;
                                if !got[c as usize] {
                                    got[c as usize] = true;
                                    touched.push(c);
                                    have += 1;
                                }
                            }
                        }
                        if have == need {
                            break 'scan;
                        }
                    }
                }
                for c in touched.drain(..) {
                    got[c as usize] = false;
                }
            }
            if have == need {
                self.set_aside(side, u as u32);
                count += 1;
            }
        }
        count
    }

    /// For a required edge (u, p) whose maximal role is unique (every holder of p holds
    /// all of u's permissions), takes that role: any cover has a role inside it.
    fn take_unique_roles(&mut self) -> usize {
        let rows = self.alive_rows(Side::People);
        let mut degree = vec![0u32; self.half(Side::Permissions).rows.len()];
        for row in &rows {
            for &c in row {
                degree[c as usize] += 1;
            }
        }
        let mut taken = 0;
        for (u, row) in rows.iter().enumerate() {
            let people = self.half(Side::People);
            if !people.alive[u] || people.required_count[u] == 0 {
                continue;
            }
            let Some(&rarest) = row.iter().min_by_key(|&&c| degree[c as usize]) else {
                continue;
            };
            let holders: Vec<u32> = self.half(Side::Permissions).rows[rarest as usize]
                .iter()
                .copied()
                .filter(|&v| people.alive[v as usize] && has_all(row, people.bits.row(v as usize)))
                .collect();
            let unique = row.iter().any(|&p| {
                people.required.get(u, p) && degree[p as usize] as usize == holders.len()
            });
            if unique {
                for &v in &holders {
                    for &p in row {
                        self.cover(v, p);
                    }
                }
                self.log.push(Step::Took((holders, row.clone())));
                taken += 1;
            }
        }
        taken
    }

    /// The connected parts of what is still in play, as (people, permissions).
    fn parts(&self) -> Vec<(Vec<u32>, Vec<u32>)> {
        let rows = self.alive_rows(Side::People);
        let n = rows.len();
        let mut parent: Vec<usize> = (0..n).collect();
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let mut owner: HashMap<u32, usize> = HashMap::new();
        for (u, row) in rows.iter().enumerate() {
            for &c in row {
                match owner.get(&c) {
                    None => {
                        owner.insert(c, u);
                    }
                    Some(&v) => {
                        let (a, b) = (root(&mut parent, v), root(&mut parent, u));
                        if a != b {
                            parent[a] = b;
                        }
                    }
                }
            }
        }
        let mut part_of: HashMap<usize, usize> = HashMap::new();
        let mut parts: Vec<(Vec<u32>, Vec<u32>)> = Vec::new();
        for (u, row) in rows.iter().enumerate() {
            if row.is_empty() {
                continue;
            }
            let r = root(&mut parent, u);
            let k = *part_of.entry(r).or_insert_with(|| {
                parts.push((Vec::new(), Vec::new()));
                parts.len() - 1
            });
            parts[k].0.push(u as u32);
        }
        for (c, u) in owner {
            let r = root(&mut parent, u);
            if let Some(&k) = part_of.get(&r) {
                parts[k].1.push(c);
            }
        }
        for part in &mut parts {
            part.1.sort_unstable();
        }
        parts
    }

    /// A part of the reduced problem seen from `side`: its rows (`rows`) over `columns`.
    fn residual(&self, side: Side, rows: &[u32], columns: &[u32]) -> Residual {
        let half = self.half(side);
        let mut local = HashMap::with_capacity(columns.len());
        for (i, &c) in columns.iter().enumerate() {
            local.insert(c, i as u32);
        }
        let lists: Vec<Vec<u32>> = rows
            .iter()
            .map(|&r| {
                half.rows[r as usize]
                    .iter()
                    .filter_map(|c| local.get(c).copied())
                    .collect()
            })
            .collect();
        let mut required = BitRows::new(rows.len(), columns.len());
        for (i, &r) in rows.iter().enumerate() {
            for (j, c) in lists[i].iter().map(|&j| (j, columns[j as usize])) {
                if half.required.get(r as usize, c) {
                    required.set(i, j);
                }
            }
        }
        Residual::new(
            lists,
            columns.len(),
            required,
            rows.to_vec(),
            columns.to_vec(),
        )
    }

    /// Extends the roles of the reduced problem to the whole one: back through the log,
    /// a row set aside joins every role within its neighbours, and the roles taken are
    /// added.
    fn unwind(&self, mut roles: Vec<Biclique>) -> Vec<Biclique> {
        for step in self.log.iter().rev() {
            match step {
                Step::Took(role) => roles.push(role.clone()),
                Step::SetAside(Side::People, u) => {
                    let bits = self.half(Side::People).bits.row(*u as usize);
                    for (people, permissions) in roles.iter_mut() {
                        if has_all(permissions, bits) {
                            people.push(*u);
                        }
                    }
                }
                Step::SetAside(Side::Permissions, p) => {
                    let bits = self.half(Side::Permissions).bits.row(*p as usize);
                    for (people, permissions) in roles.iter_mut() {
                        if has_all(people, bits) {
                            permissions.push(*p);
                        }
                    }
                }
            }
        }
        for (people, permissions) in roles.iter_mut() {
            people.sort_unstable();
            permissions.sort_unstable();
        }
        roles
    }
}

/// A candidate role of a residual: a closed column set and the rows holding it.
#[derive(Debug, Clone)]
struct Candidate {
    columns: Vec<u32>,
    rows: Vec<u32>,
}

/// Randomised greedy rounds per residual part and side: at most this many, and for the
/// whole matrix at most this much work (candidate cells scored; about a second).
const RANDOM_ROUNDS: usize = 100;
const RANDOM_WORK: usize = 300_000_000;

/// How many role cells the pair merging may examine for the whole matrix.
const MERGE_WORK: usize = 300_000_000;

/// The search work one residual part may spend (per side).
#[derive(Debug, Clone, Copy)]
struct Budget {
    random: usize,
    merge: usize,
}

impl Budget {
    /// The share `weight / total` of the whole matrix's budgets.
    fn share(weight: usize, total: usize) -> Budget {
        let part = |all: usize| (all as u128 * weight as u128 / total.max(1) as u128) as usize;
        Budget {
            random: part(RANDOM_WORK),
            merge: part(MERGE_WORK),
        }
    }
}

/// A small seeded generator (an LCG's high bits) for the randomised rounds.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n.max(1) as u64) as usize
    }
}

/// How many pairwise intersections a residual part may try for its candidates.
const PAIR_BUDGET: usize = 1_000_000;
/// How many candidates a residual part may hold.
const CANDIDATE_CAP: usize = 50_000;

/// A connected part left after the reductions, from one side: rows over columns, with the
/// edges still required.
struct Residual {
    rows: Vec<Vec<u32>>,
    bits: BitRows,
    by_column: Vec<Vec<u32>>,
    required: BitRows,
    row_ids: Vec<u32>,
    column_ids: Vec<u32>,
}

impl Residual {
    fn new(
        rows: Vec<Vec<u32>>,
        columns: usize,
        required: BitRows,
        row_ids: Vec<u32>,
        column_ids: Vec<u32>,
    ) -> Residual {
        Residual {
            bits: BitRows::of(&rows, columns),
            by_column: transpose(&rows, columns),
            rows,
            required,
            row_ids,
            column_ids,
        }
    }

    fn holders(&self, set: &[u32]) -> Vec<u32> {
        let Some(&rarest) = set
            .iter()
            .min_by_key(|&&c| self.by_column[c as usize].len())
        else {
            return Vec::new();
        };
        self.by_column[rarest as usize]
            .iter()
            .copied()
            .filter(|&r| has_all(set, self.bits.row(r as usize)))
            .collect()
    }

    /// Closed candidates: every row's set and the pairwise intersections of rows that
    /// share a column, each closed (the intersection of all its holders).
    fn candidates(&self) -> Vec<Candidate> {
        let mut seen: HashSet<Vec<u32>> = HashSet::new();
        let mut sets: Vec<Vec<u32>> = Vec::new();
        for row in &self.rows {
            if seen.insert(row.clone()) {
                sets.push(row.clone());
            }
        }
        let n = self.rows.len();
        let per_row = (PAIR_BUDGET / n.max(1)).max(8);
        let mut mark = vec![false; n];
        'rows: for a in 0..n {
            let mut partners: Vec<u32> = Vec::new();
            for &c in &self.rows[a] {
                for &b in &self.by_column[c as usize] {
                    if (b as usize) > a && !mark[b as usize] {
                        mark[b as usize] = true;
                        partners.push(b);
                    }
                }
            }
            for &b in &partners {
                mark[b as usize] = false;
            }
            for &b in partners.iter().take(per_row) {
                let x = intersect(&self.rows[a], &self.rows[b as usize]);
                if !x.is_empty() && seen.insert(x.clone()) {
                    sets.push(x);
                    if sets.len() >= CANDIDATE_CAP {
                        break 'rows;
                    }
                }
            }
        }
        let mut closed_seen: HashSet<Vec<u32>> = HashSet::new();
        let mut out = Vec::with_capacity(sets.len());
        for set in sets {
            let rows = self.holders(&set);
            let mut closed = match rows.first() {
                Some(&r) => self.rows[r as usize].clone(),
                None => continue,
            };
            for &r in &rows[1..] {
                closed = intersect(&closed, &self.rows[r as usize]);
            }
            if closed_seen.insert(closed.clone()) {
                out.push(Candidate {
                    columns: closed,
                    rows,
                });
            }
        }
        out
    }

    fn gain(&self, candidate: &Candidate, uncovered: &BitRows) -> usize {
        candidate
            .rows
            .iter()
            .map(|&r| {
                let row = uncovered.row(r as usize);
                candidate
                    .columns
                    .iter()
                    .filter(|&&c| row[c as usize / 64] >> (c % 64) & 1 == 1)
                    .count()
            })
            .sum()
    }

    /// Greedy cover of the required edges by the candidate granting the most of them
    /// (lazily re-scored), then dropping candidates that cover nothing on their own.
    /// Returns (rows, columns) in the reducer's numbering.
    fn cover(&self, budget: Budget) -> Vec<Biclique> {
        let candidates = self.candidates();
        let mut uncovered = self.required.clone();
        let mut left: usize = uncovered.data.iter().map(|w| w.count_ones() as usize).sum();
        let mut heap: BinaryHeap<(usize, usize, std::cmp::Reverse<usize>)> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                (
                    self.gain(c, &uncovered),
                    c.columns.len(),
                    std::cmp::Reverse(i),
                )
            })
            .filter(|e| e.0 > 0)
            .collect();
        let mut chosen: Vec<usize> = Vec::new();
        while left > 0 {
            let Some((gain, size, std::cmp::Reverse(i))) = heap.pop() else {
                break;
            };
            let now = self.gain(&candidates[i], &uncovered);
            if now < gain {
                if now > 0 {
                    heap.push((now, size, std::cmp::Reverse(i)));
                }
                continue;
            }
            for &r in &candidates[i].rows {
                for &c in &candidates[i].columns {
                    uncovered.clear(r as usize, c);
                }
            }
            left -= now;
            chosen.push(i);
        }
        // Every required edge lies in the candidate of its own row, so `left` reaches 0.
        let mut best = self.without_redundant(&candidates, chosen);
        // Then randomised greedy rounds (each pick among the candidates within 10% of the
        // best gain), as many as the work budget allows; the smallest cover wins. Seeded,
        // so a matrix always gets the same roles.
        let sweep: usize = candidates
            .iter()
            .map(|c| c.rows.len() * c.columns.len())
            .sum();
        let per_round = sweep.saturating_mul(best.len()).max(1);
        let rounds = (budget.random / per_round).min(RANDOM_ROUNDS);
        let mut rng = Lcg(0x9e37_79b9_7f4a_7c15 ^ ((self.rows.len() as u64) << 32) ^ sweep as u64);
        for _ in 0..rounds {
            let cover = self.random_greedy(&candidates, &mut rng);
            let cover = self.without_redundant(&candidates, cover);
            if cover.len() < best.len() {
                best = cover;
            }
        }
        let best: Vec<Candidate> = best.into_iter().map(|i| candidates[i].clone()).collect();
        self.merge_pairs(best, budget.merge)
            .into_iter()
            .map(|c| {
                (
                    c.rows.iter().map(|&r| self.row_ids[r as usize]).collect(),
                    c.columns
                        .iter()
                        .map(|&c| self.column_ids[c as usize])
                        .collect(),
                )
            })
            .collect()
    }

    /// Local improvement: two roles whose sole grants all fit in one role are replaced by
    /// it (the grants' rows must all hold the grants' columns), until no pair merges.
    fn merge_pairs(&self, mut roles: Vec<Candidate>, budget: usize) -> Vec<Candidate> {
        let width = self.column_ids.len();
        let covers = |role: &Candidate, r: u32, c: u32| {
            role.rows.binary_search(&r).is_ok() && role.columns.binary_search(&c).is_ok()
        };
        fn cells(role: &Candidate, width: usize) -> impl Iterator<Item = usize> + '_ {
            role.rows.iter().flat_map(move |&r| {
                role.columns
                    .iter()
                    .map(move |&c| r as usize * width + c as usize)
            })
        }
        let mut count = vec![0u32; self.rows.len() * width];
        for role in &roles {
            for cell in cells(role, width) {
                count[cell] += 1;
            }
        }
        let mut work = 0usize;
        let mut lost_rows: Vec<u32> = Vec::new();
        let mut lost_columns: Vec<u32> = Vec::new();
        // Passes over all pairs until one merges nothing or the budget is spent.
        let mut merged_any = true;
        while merged_any {
            merged_any = false;
            let mut a = 0;
            while a < roles.len() {
                let mut b = a + 1;
                while b < roles.len() {
                    if work >= budget {
                        return roles;
                    }
                    lost_rows.clear();
                    lost_columns.clear();
                    for (x, y) in [(a, b), (b, a)] {
                        work += roles[x].rows.len() * roles[x].columns.len();
                        for &r in &roles[x].rows {
                            for &c in &roles[x].columns {
                                if !self.required.get(r as usize, c) {
                                    continue;
                                }
                                let own = 1 + u32::from(covers(&roles[y], r, c));
                                if count[r as usize * width + c as usize] == own {
                                    lost_rows.push(r);
                                    lost_columns.push(c);
                                }
                            }
                        }
                    }
                    lost_columns.sort_unstable();
                    lost_columns.dedup();
                    lost_rows.sort_unstable();
                    lost_rows.dedup();
                    // One role can grant all of it only if every such row holds every
                    // such column.
                    work += lost_rows.len() * lost_columns.len();
                    let fits = lost_rows
                        .iter()
                        .all(|&r| has_all(&lost_columns, self.bits.row(r as usize)));
                    if !fits || lost_columns.is_empty() {
                        b += 1;
                        continue;
                    }
                    let holders = self.holders(&lost_columns);
                    let Some((&first, rest)) = holders.split_first() else {
                        b += 1;
                        continue;
                    };
                    let mut columns = self.rows[first as usize].clone();
                    for &r in rest {
                        columns = intersect(&columns, &self.rows[r as usize]);
                    }
                    let role = Candidate {
                        columns,
                        rows: holders,
                    };
                    for cell in cells(&roles[a], width).chain(cells(&roles[b], width)) {
                        count[cell] -= 1;
                    }
                    for cell in cells(&role, width) {
                        count[cell] += 1;
                    }
                    roles[a] = role;
                    roles.swap_remove(b);
                    merged_any = true;
                    // Role `a` is new: try it against every other role again.
                    b = a + 1;
                }
                a += 1;
            }
        }
        roles
    }

    /// One greedy cover, each pick drawn among the candidates whose gain is within 10%
    /// of the best.
    fn random_greedy(&self, candidates: &[Candidate], rng: &mut Lcg) -> Vec<usize> {
        let mut uncovered = self.required.clone();
        let mut left: usize = uncovered.data.iter().map(|w| w.count_ones() as usize).sum();
        let mut gains: Vec<usize> = candidates
            .iter()
            .map(|c| self.gain(c, &uncovered))
            .collect();
        let mut chosen = Vec::new();
        let mut pool = Vec::new();
        while left > 0 {
            let top = gains.iter().copied().max().unwrap_or(0);
            if top == 0 {
                break;
            }
            let floor = (top * 9).div_ceil(10).max(1);
            pool.clear();
            pool.extend((0..candidates.len()).filter(|&i| gains[i] >= floor));
            let i = pool[rng.below(pool.len())];
            for &r in &candidates[i].rows {
                for &c in &candidates[i].columns {
                    uncovered.clear(r as usize, c);
                }
            }
            left -= gains[i];
            chosen.push(i);
            for (g, c) in gains.iter_mut().zip(candidates) {
                if *g > 0 {
                    *g = self.gain(c, &uncovered);
                }
            }
        }
        chosen
    }

    fn without_redundant(&self, candidates: &[Candidate], chosen: Vec<usize>) -> Vec<usize> {
        let width = self.column_ids.len();
        let mut count = vec![0u32; self.rows.len() * width];
        for &i in &chosen {
            for &r in &candidates[i].rows {
                for &c in &candidates[i].columns {
                    count[r as usize * width + c as usize] += 1;
                }
            }
        }
        let mut order = chosen.clone();
        order.sort_by_key(|&i| candidates[i].rows.len() * candidates[i].columns.len());
        let mut dropped: HashSet<usize> = HashSet::new();
        for i in order {
            let c = &candidates[i];
            let redundant = c.rows.iter().all(|&r| {
                c.columns.iter().all(|&col| {
                    !self.required.get(r as usize, col)
                        || count[r as usize * width + col as usize] > 1
                })
            });
            if redundant {
                for &r in &c.rows {
                    for &col in &c.columns {
                        count[r as usize * width + col as usize] -= 1;
                    }
                }
                dropped.insert(i);
            }
        }
        chosen
            .into_iter()
            .filter(|i| !dropped.contains(i))
            .collect()
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The live policy as a matrix.

/// The live policy as a role-mining matrix, with the database ids behind its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyMatrix {
    /// People labelled by employee id, doors by name.
    pub matrix: Matrix,
    /// The person id of each row.
    pub person_ids: Vec<i64>,
    /// The door id of each permission.
    pub door_ids: Vec<i64>,
}

/// People × the doors they can open through their access levels at `now`: active people
/// within their validity, entitlements not expired, zones expanded to all their doors
/// (child zones included). Schedules are not considered: a door opened at any time counts.
pub fn matrix_from_policy(policy: &PolicyData, now: DateTime<Utc>) -> PolicyMatrix {
    let door_index: HashMap<i64, u32> = policy
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id, i as u32))
        .collect();
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    for zone in &policy.zones {
        if let Some(parent) = zone.parent_id {
            children.entry(parent).or_default().push(zone.id);
        }
    }
    let mut zone_doors: HashMap<i64, Vec<u32>> = HashMap::new();
    for (i, door) in policy.doors.iter().enumerate() {
        zone_doors.entry(door.zone_id).or_default().push(i as u32);
    }
    // Doors of a zone and its descendants (the visited set guards against a cycle).
    let subtree = |zone: i64| -> Vec<u32> {
        let mut out = Vec::new();
        let mut stack = vec![zone];
        let mut visited = HashSet::new();
        while let Some(z) = stack.pop() {
            if !visited.insert(z) {
                continue;
            }
            out.extend(zone_doors.get(&z).into_iter().flatten().copied());
            stack.extend(children.get(&z).into_iter().flatten().copied());
        }
        out
    };
    let level_doors: HashMap<i64, Vec<u32>> = policy
        .levels
        .iter()
        .map(|level| {
            let mut doors: Vec<u32> = level
                .items
                .iter()
                .flat_map(|item| match item.target {
                    Target::Door(id) => door_index.get(&id).copied().into_iter().collect(),
                    Target::Zone(id) => subtree(id),
                })
                .collect();
            doors.sort_unstable();
            doors.dedup();
            (level.id, doors)
        })
        .collect();
    let people: Vec<&crate::policy::model::Person> = policy
        .people
        .iter()
        .filter(|p| {
            p.status == PersonStatus::Active
                && p.valid_from.is_none_or(|from| from <= now)
                && p.valid_until.is_none_or(|until| now < until)
        })
        .collect();
    let row_of: HashMap<i64, u32> = people
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id, i as u32))
        .collect();
    let mut assignments = Vec::new();
    for entitlement in &policy.entitlements {
        if entitlement.valid_until.is_some_and(|until| until <= now) {
            continue;
        }
        let (Some(&row), Some(doors)) = (
            row_of.get(&entitlement.person_id),
            level_doors.get(&entitlement.level_id),
        ) else {
            continue;
        };
        assignments.extend(doors.iter().map(|&d| (row, d)));
    }
    PolicyMatrix {
        matrix: Matrix::new(
            people.iter().map(|p| p.employee_id.clone()).collect(),
            policy.doors.iter().map(|d| d.name.clone()).collect(),
            assignments,
        ),
        person_ids: people.iter().map(|p| p.id).collect(),
        door_ids: policy.doors.iter().map(|d| d.id).collect(),
    }
}

#[cfg(test)]
#[path = "roles_tests.rs"]
mod tests;
