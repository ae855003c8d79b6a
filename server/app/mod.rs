//! The running appliance: `serve` starts everything, `AppState` is what handlers share,
//! `routes` is the one URL map, `database` opens the database, `live` holds the policy.

pub mod database;
pub mod live;
pub mod routes;
pub mod serve;
pub mod state;
