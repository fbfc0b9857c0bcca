//! From the socket to a request: accepting connections, TLS termination (and
//! its ACME certificates), the HTTP/1 and HTTP/2 connection, the file-descriptor
//! budget.

pub(crate) mod accept;
pub(crate) mod acme;
pub(crate) mod conn;
pub(crate) mod fdlimit;
pub(crate) mod tls;
