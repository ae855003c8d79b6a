//! Who may act and how that is proved: admin users and API tokens (with their scopes),
//! console sessions, the argon2id hashing of passwords and PINs, the appliance key the
//! secrets derive from, and the provenance every change records.

pub mod admins;
pub mod appliance_key;
pub mod provenance;
pub mod secret;
pub mod sessions;
pub mod throttle;
