//! The doors' side of the appliance: the hub that turns a reader's message into a decision,
//! a durable record and an answer, its MQTT and Modbus transports, and what it keeps of
//! each reader and door (health, door state, alarms, fault budget, PIN lockout).

pub mod alarms;
pub mod door_state;
pub mod fault_budget;
pub mod health;
pub mod hub;
pub mod modbus;
pub mod mqtt;
pub mod pin_lockout;
