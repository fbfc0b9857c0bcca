//! Why a gateway could not start.

use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why [`Server::bind`](crate::Server::bind) (or [`Server::run`](crate::Server::run))
/// failed. Each kind says what to change; the source, when there is one, is the
/// operating system's error.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A listener could not be bound: the address is in use, not local, or
    /// needs privileges.
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// The setting the address comes from: `listen` or `admin_listen`.
        setting: &'static str,
        /// Why the operating system refused.
        source: io::Error,
    },
    /// `max_connections` needs more file descriptors than `RLIMIT_NOFILE`
    /// allows, and cannot be lowered (it was written in the configuration).
    FileDescriptors {
        /// The `max_connections` the configuration asks for.
        max_connections: usize,
        /// Descriptors `max_connections` needs.
        needed: u64,
        /// The soft limit on open files.
        limit: u64,
        /// The `max_connections` that fits the limit.
        fits: usize,
    },
    /// A route's upstream is `builtin:demo`, and this build has no demo API
    /// (the `demo` feature is off).
    NoDemo {
        /// The route, as `index:path`.
        route: String,
    },
    /// `[server.tls]`: a certificate or key could not be loaded (the message
    /// names the file and what is wrong with it).
    Tls(String),
    /// `[route.upstream_tls]`: a CA file or client certificate of an
    /// `https://` upstream could not be loaded (every problem, one a line).
    UpstreamTls(String),
    /// Another failure of the operating system (reading a bound address).
    Io(io::Error),
    /// The client registry's database cannot be opened or is too new.
    Registry {
        /// The database, as opened.
        database: String,
        /// What the store reported.
        source: corsgate_registry::StoreError,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Listen { addr, setting, .. } if *setting == "listen" => {
                write!(f, "cannot listen on {addr}")
            }
            Error::Listen { addr, setting, .. } => {
                write!(f, "cannot listen on {addr} ({setting})")
            }
            Error::FileDescriptors {
                max_connections,
                needed,
                limit,
                fits,
            } => write!(
                f,
                "server.max_connections = {max_connections} needs about {needed} file descriptors \
                 ({} per proxied connection, client and upstream, plus {} in reserve), \
                 but the limit on open files (RLIMIT_NOFILE) is {limit}; raise it (LimitNOFILE={needed} in the \
                 systemd unit, or `ulimit -n {needed}` before starting) or lower server.max_connections to {fits}",
                crate::listen::fdlimit::FDS_PER_CONNECTION,
                crate::listen::fdlimit::FDS_RESERVE,
            ),
            Error::NoDemo { route } => write!(
                f,
                "route {route} has upstream = \"builtin:demo\", but this build has no built-in demo; \
                 point it at an http:// upstream, or use a build with the demo feature"
            ),
            Error::Tls(message) => write!(f, "[server.tls]: {message}"),
            Error::UpstreamTls(message) => write!(f, "TLS to upstreams: {message}"),
            Error::Io(err) => write!(f, "{err}"),
            Error::Registry { database, .. } => {
                write!(f, "cannot open the client registry {database}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Listen { source, .. } => Some(source),
            Error::Io(err) => Some(err),
            Error::Registry { source, .. } => Some(source),
            Error::FileDescriptors { .. }
            | Error::NoDemo { .. }
            | Error::Tls(_)
            | Error::UpstreamTls(_) => None,
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Self {
        Error::Io(err)
    }
}
