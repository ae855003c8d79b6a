//! The risk engine: judgement over the policy and its history. Baselines of who normally
//! goes where and when with the anomaly score every recorded swipe gets against them, the
//! entitlement review, and role mining. docs/risk.md says what it uses and why.
//!
//! - `observation.rs`: the one conversion from a recorded event to what is scored.
//! - `context.rs`: who belongs to which peer group, status changes, site time zones.
//! - `baselines.rs`: the compiled `Baselines` (aggregates, never events) and their training.
//! - `recent.rs`: short-term state (denials, last place of each card), bounded.
//! - `score.rs`: the pure `score` function and its typed reasons.
//! - `live.rs`: the baselines in force (arc-swap), the event writer's scorer, retraining.
//! - `scenario.rs`: the seeded scenario generator the tests and the benchmark use.
//! - `entitlements.rs`: the entitlement review (unused, peer outliers, redundant, dormant
//!   cards, over-broad levels, toxic combinations), pure over usage read through
//!   `store::history`.
//! - `roles.rs`: role mining, access levels proposed from the person × door matrix (exact
//!   or with a stated share of exceptions), pure over the matrix.

pub mod baselines;
pub mod context;
pub mod entitlements;
pub mod evaluation;
pub mod live;
pub mod observation;
pub mod recent;
pub mod roles;
pub mod scenario;
pub mod score;

pub use baselines::Baselines;
pub use context::ScoringContext;
pub use observation::{Observation, Outcome};
pub use recent::Recent;
pub use score::{Reason, ReasonCode, Score, score};
