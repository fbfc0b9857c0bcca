//! The admin listener: one table of endpoints with their access rules, one
//! access check in front of every handler, health, metrics and reloads, the
//! client registry's API and the dashboard.

pub(crate) mod auth;
pub(crate) mod dashboard;
pub(crate) mod endpoints;
pub(crate) mod registry_admin;
pub(crate) mod server;
