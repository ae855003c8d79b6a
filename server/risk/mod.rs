//! The risk engine: judgement over the policy and its history (anomalies, entitlement
//! review, role mining). Pure analyses over aggregates read through `store::history`.

pub mod entitlements;
