//! The doors' side: the hub (a reader's message → decision → durable record → answer), its
//! MQTT and Modbus transports, and what it keeps of readers and doors (health, alarms …).

pub mod alarms;
pub mod door_state;
pub mod fault_budget;
pub mod health;
pub mod hub;
pub mod modbus;
pub mod mqtt;
pub mod pin_lockout;
