//! Gatehouse, an on-prem physical access control appliance.
//! ARCHITECTURE.md walks through the modules; this file only lists them.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod entities;
pub mod identity;
pub mod input;
pub mod io;
pub mod policy;
pub mod readers;
pub mod risk;

pub mod store;
pub mod web;
