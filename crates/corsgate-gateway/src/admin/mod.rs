//! The admin listener: health, metrics and reloads, the client registry's API
//! and the dashboard.

pub(crate) mod dashboard;
pub(crate) mod registry_admin;
pub(crate) mod server;
