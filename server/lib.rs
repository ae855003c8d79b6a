//! Gatehouse, an on-prem physical access control appliance.
//! ARCHITECTURE.md walks through the modules; this file only lists them.

pub mod admins;
pub mod alarms;
pub mod appliance_key;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod door_state;
pub mod entities;
pub mod event_log;
pub mod explain;
pub mod fault_budget;
pub mod hub;
pub mod input;
pub mod io;
pub mod live;
pub mod pin_lockout;
pub mod policy;
pub mod reader_health;
pub mod reader_modbus;
pub mod reader_mqtt;
pub mod secret;
pub mod serve;
pub mod simulate;
pub mod store;
pub mod web;
