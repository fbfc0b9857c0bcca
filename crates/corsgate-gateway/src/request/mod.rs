//! One request through the gateway: the phases over a `RequestCtx` (resolve,
//! decide, admit, forward, respond), client identification, the bodies, the
//! headers the gateway adds or strips, and the errors it answers itself.

pub(crate) mod body;
pub(crate) mod gateway_error;
pub(crate) mod headers;
pub(crate) mod identify;
pub(crate) mod proxy;
pub(crate) mod via;
