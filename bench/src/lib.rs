//! Benchmarks of Gatehouse.
pub mod building;
