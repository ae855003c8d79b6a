//! Benchmarks of Gatehouse, each run beside a reference measured in the same run.
//!
//! * [`building`]: a generated building ([`building::generate`]), reusable by any benchmark.
//! * [`requests`]: the decision benchmark's request mix.
//! * [`cedar`]: the same policy in the `cedar-policy` crate, in two forms.
//! * [`run`], [`measure`]: the timed passes, statistics, process memory and thread CPU.
//! * [`appliance`]: the appliance inside a benchmark's process.
//! * [`event_rows`]: event rows in bulk, straight into SQLite.
//! * [`isolation_forest`]: the risk benchmark's reference detector.
//! * [`console_site`]: the console benchmark's database (the example site, 100,000 people,
//!   10 million events), cached between runs.

pub mod appliance;
pub mod building;
pub mod cedar;
pub mod console_site;
pub mod event_rows;
pub mod isolation_forest;
pub mod measure;
pub mod requests;
pub mod run;
