//! The running appliance: `serve` starts everything, `AppState` is what handlers share,
//! `routes` is the one URL map, `database` opens the database, `live` holds the policy,
//! `jobs` runs what is periodic.

pub mod database;
pub mod jobs;
pub mod live;
pub mod routes;
pub mod serve;
pub mod state;
