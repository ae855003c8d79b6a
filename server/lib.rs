//! Gatehouse, an on-prem physical access control appliance.
//! ARCHITECTURE.md walks through the modules; this file only lists them.

pub mod policy;
pub mod secret;
pub mod admins;
pub mod audit;
pub mod clock;
pub mod config;
pub mod entities;
pub mod live;
pub mod store;
pub mod cli;
pub mod explain;
pub mod serve;
pub mod site_file;
pub mod web;
