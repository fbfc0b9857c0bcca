//! What the gateway records about its traffic: metrics, the access log and the
//! refusal log.

pub(crate) mod access_log;
pub(crate) mod metrics;
pub(crate) mod refusals;
