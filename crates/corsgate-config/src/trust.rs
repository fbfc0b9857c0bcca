//! `trusted_proxies`: the peers whose forwarding headers (`X-Forwarded-*`,
//! `Forwarded`, `X-Real-IP`, `X-Request-Id`) are believed.
//!
//! A CIDR block is parsed here rather than with a crate: it is an address from
//! the standard library, a `/`, and a prefix length; the only subtle points are
//! refusing host bits (`10.0.0.1/8` is a typo for `10.0.0.0/8` or for
//! `10.0.0.1/32`, and guessing either is wrong) and comparing IPv4-mapped IPv6
//! peers (`::ffff:10.0.0.1`, what a dual-stack listener reports) as IPv4.

use std::net::IpAddr;

/// One `trusted_proxies` entry: an address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `fd00::/8`, or a single address (`192.0.2.7`,
    /// `::1`), or says why not and how to fix it.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let Ok(network) = addr.parse::<IpAddr>() else {
            return Err(
                "an IP address or block, such as \"10.0.0.0/8\", \"192.0.2.7\" or \"fd00::/8\" (no host names)"
                    .into(),
            );
        };
        let network = unmap(network);
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only, no leading zero: `u8::from_str` would read `+8`
            // and `08` as 8.
            Some(p) => match p.parse::<u8>() {
                Ok(n)
                    if n <= max && p.bytes().all(|b| b.is_ascii_digit()) && n.to_string() == p =>
                {
                    n
                }
                _ => return Err(format!("the prefix length is a number from 0 to {max}")),
            },
        };
        let cidr = Cidr { network, prefix };
        if cidr.masked(network) != network {
            let fixed = cidr.masked(network);
            return Err(format!(
                "the address has bits set beyond the prefix; use \"{fixed}/{prefix}\" for the block, or \"{network}\" for this address alone"
            ));
        }
        Ok(cidr)
    }

    /// Whether `peer` is in the block.
    pub fn contains(&self, peer: IpAddr) -> bool {
        let peer = unmap(peer);
        peer.is_ipv4() == self.network.is_ipv4() && self.masked(peer) == self.network
    }

    fn masked(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `::ffff:a.b.c.d` as `a.b.c.d`.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `peer` is one of `proxies`.
pub fn is_trusted(proxies: &[Cidr], peer: IpAddr) -> bool {
    proxies.iter().any(|c| c.contains(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let block = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(block.contains(ip("10.255.0.1")));
        assert!(block.contains(ip("::ffff:10.1.2.3")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(!block.contains(ip("::1")));
        let one = Cidr::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")));
        assert!(!one.contains(ip("192.0.2.8")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fdab::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert_eq!(Cidr::parse("::ffff:10.0.0.0/104").ok(), None);
    }

    #[test]
    fn bad_blocks_are_refused_with_the_fix() {
        assert!(
            Cidr::parse("10.0.0.1/8")
                .unwrap_err()
                .contains("\"10.0.0.0/8\"")
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/08",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "fd00::/129",
            "proxy.internal",
            "",
            "10.0.0/8",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
