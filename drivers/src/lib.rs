//! Gatehouse reader drivers: the wire contract of docs/protocol.md (events, commands,
//! message authentication, the Modbus register map). Knows nothing of people or policy.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod mac;
pub mod message;
pub mod modbus;
pub mod modbus_map;
pub mod mqtt;
pub mod networks;
pub mod sim;
pub mod sim_modbus;
