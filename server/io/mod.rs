//! What comes in and goes out in bulk: the site file (import and export) and the people
//! CSV of HR, both written through the same audited `entities` paths as the API, and the
//! event history of a previous access system (`events_csv`), added to the event log.

pub mod events_csv;
pub mod people_csv;
pub mod site_file;
