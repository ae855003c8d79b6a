//! The integration test binary: every test of the whole appliance, over real sockets and
//! real databases (SQLite always; PostgreSQL when GATEHOUSE_TEST_POSTGRES_URL is set).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod antipassback;
mod api;
mod app;
mod audit_chain;
mod auth;
mod cli;
mod console;
mod console_editing;
mod console_notices;
mod console_reading;
mod console_timezones;
mod crash;
mod entitlement_review;
mod event_log;
mod events_import;
mod harness;
mod history;
mod holidays;
mod https;
mod hub;
mod input;
mod jobs;
mod memory;
mod modbus;
mod mosquitto;
mod mqtt;
mod policy_live;
mod provenance;
mod risk;
mod secrets_at_rest;
mod site_file;
mod storage;
