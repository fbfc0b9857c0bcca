//! From a request to the upstream and back: the connection pool, TLS and h2c
//! towards upstreams, forwarding a request, and WebSocket tunnels.

pub(crate) mod forward;
pub(crate) mod pool;
pub(crate) mod tunnel;
pub(crate) mod upstream_tls;
