//! The risk engine: judgement over the policy and its history (anomalies, entitlements,
//! roles). Each analysis is a pure function over plain data; callers bring the data.

pub mod roles;
