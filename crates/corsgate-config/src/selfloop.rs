//! An upstream that is the gateway itself: every request forwarded to it comes
//! back to corsgate, which forwards it again, until something gives out (header
//! size, file descriptors). What can be told from the file alone is refused at
//! load time; a loop through a DNS name or a second host is only visible at run
//! time (the gateway's `Via` check).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::uri::Authority;

/// Whether a connection to `upstream` (an `http://` or `h2c://` authority, port
/// 80 when it names none) reaches a listener bound to `listen` (the
/// configuration's own check reads an `https://` upstream's port as 443).
///
/// The host is read as the resolver the gateway connects through reads it:
/// `localhost` (and `*.localhost`, RFC 6761 §6.3) is both loopback addresses,
/// and an IPv4 address in any of the spellings `inet_aton` accepts (`127.1`,
/// `2130706433`, `0x7f.0.0.1`) is that address (the URL standard's IPv4 parser,
/// §3.5, accepts the same ones). Connecting to `0.0.0.0` or `[::]` reaches
/// the loopback address of that family on Linux, and a listener on `[::]`
/// also takes IPv4 connections (dual stack, the Linux default). Other DNS names
/// are not resolved here: the file alone cannot tell where they lead.
///
/// ```
/// use corsgate_config::selfloop::reaches_listener;
/// let listen = "127.0.0.1:8080".parse().unwrap();
/// assert!(reaches_listener(&"localhost:8080".parse().unwrap(), listen));
/// assert!(reaches_listener(&"127.1:8080".parse().unwrap(), listen));
/// assert!(!reaches_listener(&"127.0.0.1:3000".parse().unwrap(), listen));
/// ```
pub fn reaches_listener(upstream: &Authority, listen: SocketAddr) -> bool {
    reaches_listener_at(upstream, 80, listen)
}

/// [`reaches_listener`] for an upstream whose scheme has `default_port` (443
/// for `https://`, RFC 9110 §4.2.2) when the authority names none.
pub(crate) fn reaches_listener_at(
    upstream: &Authority,
    default_port: u16,
    listen: SocketAddr,
) -> bool {
    let port = upstream.port_u16().unwrap_or(default_port);
    // Port 0 asks the system for a free port: no upstream can name it in advance.
    if listen.port() == 0 || port != listen.port() {
        return false;
    }
    addresses(upstream.host())
        .into_iter()
        .any(|ip| reaches(ip, listen.ip()))
}

/// The addresses a host of an upstream URL stands for, when the file alone
/// says; empty for a DNS name.
fn addresses(host: &str) -> Vec<IpAddr> {
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    match url::Host::parse(host) {
        Ok(url::Host::Ipv4(ip)) => vec![ip.into()],
        Ok(url::Host::Ipv6(ip)) => vec![match ip.to_ipv4_mapped() {
            Some(v4) => v4.into(),
            None => ip.into(),
        }],
        _ => Vec::new(),
    }
}

/// Whether connecting to `to` reaches a socket bound to `bound`.
fn reaches(to: IpAddr, bound: IpAddr) -> bool {
    let local = |ip: IpAddr| ip.is_loopback() || ip.is_unspecified();
    match bound {
        IpAddr::V4(b) if b.is_unspecified() => to.is_ipv4() && local(to),
        IpAddr::V6(b) if b.is_unspecified() => local(to),
        _ if to == bound => true,
        // A connection to the unspecified address goes to loopback.
        IpAddr::V4(b) => to == IpAddr::V4(Ipv4Addr::UNSPECIFIED) && b == Ipv4Addr::LOCALHOST,
        IpAddr::V6(b) => to == IpAddr::V6(Ipv6Addr::UNSPECIFIED) && b == Ipv6Addr::LOCALHOST,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loops(upstream: &str, listen: &str) -> bool {
        reaches_listener(
            &upstream.parse().expect("authority"),
            listen.parse().expect("socket address"),
        )
    }

    #[test]
    fn every_spelling_of_the_listen_address_is_a_loop() {
        for upstream in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST.:8080",
            "app.localhost:8080",
            "0.0.0.0:8080",
            "127.1:8080",
            "2130706433:8080",
            "0x7f.0.0.1:8080",
            "[::ffff:127.0.0.1]:8080",
        ] {
            assert!(loops(upstream, "127.0.0.1:8080"), "{upstream}");
        }
        for upstream in ["[::1]:8080", "[::]:8080", "localhost:8080"] {
            assert!(loops(upstream, "[::1]:8080"), "{upstream}");
        }
        for upstream in ["127.0.0.2:8080", "localhost:8080", "0.0.0.0:8080"] {
            assert!(loops(upstream, "0.0.0.0:8080"), "{upstream}");
        }
        for upstream in ["[::]:8080", "[::1]:8080", "127.0.0.1:8080", "0.0.0.0:8080"] {
            assert!(loops(upstream, "[::]:8080"), "{upstream}");
        }
        assert!(loops("127.0.0.1", "127.0.0.1:80"), "default port");
        assert!(loops("10.0.0.5:8080", "10.0.0.5:8080"));
    }

    #[test]
    fn other_ports_hosts_and_names_are_not() {
        assert!(!loops("127.0.0.1:8081", "127.0.0.1:8080"));
        assert!(!loops("127.0.0.1", "127.0.0.1:8080"));
        assert!(!loops("127.0.0.2:8080", "127.0.0.1:8080"));
        assert!(!loops("[::1]:8080", "0.0.0.0:8080"));
        assert!(!loops("0.0.0.0:8080", "10.0.0.5:8080"));
        assert!(!loops("api.internal:8080", "0.0.0.0:8080"));
        assert!(!loops("127.0.0.1:0", "127.0.0.1:0"));
    }
}
