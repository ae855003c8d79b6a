//! Who may act and how that is proved: admin users and API tokens, console sessions, the
//! argon2id hashing of passwords and PINs, and the appliance key the secrets derive from.

pub mod admins;
pub mod appliance_key;
pub mod secret;
pub mod sessions;
pub mod throttle;
