//! Source ips in canonical form (docs/security-rules.md).
//!
//! Rules compare addresses, not the text a producer wrote: `2001:DB8::1` and `2001:db8::1` are
//! one source, and so are `10.0.0.1` and its IPv4-mapped form `::ffff:10.0.0.1`. Text that does
//! not parse as an address (`"hot"`, `"10.0.0.1:443"`, a zone id) is no source ip: the event is
//! still judged by the user-keyed rules, but never counted under that text, which an attacker
//! could vary at will.
//!
//! The ip-keyed rules (brute_force, credential_stuffing) and the blocklist key an IPv6 source
//! by its /64: whoever holds one IPv6 address usually holds the whole /64 (the smallest subnet
//! a site is given), so counting single addresses would let an attacker rotate freely.

use std::net::{IpAddr, Ipv6Addr};

/// The canonical address `text` names, or `None` when it is not an ip address. IPv4-mapped
/// IPv6 addresses are their IPv4 address; `Display` then writes IPv6 as RFC 5952 says
/// (lowercase, the longest run of zero groups compressed).
pub fn canonical_ip(text: &str) -> Option<IpAddr> {
    match text.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        v4 => Some(v4),
    }
}

/// What the ip-keyed rules count a source under, and what a block names: an IPv4 address as
/// it is (`203.0.113.5`), an IPv6 address as its /64 in CIDR notation (`2001:db8::/64`), which
/// firewalls consume as it is.
pub fn source_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let [a, b, c, d, ..] = v6.segments();
            format!("{}/64", Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
        }
    }
}

/// [`source_key`] of the text, when it is an ip address.
pub fn source_key_of(text: &str) -> Option<String> {
    canonical_ip(text).map(source_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> Option<String> {
        canonical_ip(text).map(|ip| ip.to_string())
    }

    #[test]
    fn addresses_are_written_in_one_form() {
        assert_eq!(canonical("2001:DB8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(
            canonical("2001:0db8:0000:0000:0000:0000:0000:0001").as_deref(),
            Some("2001:db8::1")
        );
        // RFC 5952: the longest run of zeros is compressed, a single zero group is not.
        assert_eq!(
            canonical("2001:db8:0:1:0:0:0:1").as_deref(),
            Some("2001:db8:0:1::1")
        );
        assert_eq!(
            canonical("2001:db8:0:1:1:1:1:1").as_deref(),
            Some("2001:db8:0:1:1:1:1:1")
        );
        assert_eq!(canonical("::ffff:10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(canonical("::FFFF:0a00:0001").as_deref(), Some("10.0.0.1"));
        assert_eq!(canonical("10.0.0.1").as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn text_that_is_not_an_address_is_no_ip() {
        for text in [
            "hot",
            "ip",
            "",
            " 10.0.0.1",
            "10.0.0.1:443",
            "010.0.0.1",
            "10.0.0.256",
            "fe80::1%eth0",
            "[2001:db8::1]",
            "2001:db8::/64",
        ] {
            assert_eq!(canonical_ip(text), None, "{text:?}");
        }
    }

    #[test]
    fn ipv6_sources_are_keyed_by_their_64() {
        assert_eq!(
            source_key_of("2001:db8:1:2:aaaa::1").as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(
            source_key_of("2001:DB8:1:2:ffff:ffff:ffff:ffff"),
            source_key_of("2001:db8:1:2::7")
        );
        assert_ne!(
            source_key_of("2001:db8:1:2::1"),
            source_key_of("2001:db8:1:3::1")
        );
        assert_eq!(
            source_key_of("2001:db8::1").as_deref(),
            Some("2001:db8::/64")
        );
        assert_eq!(
            source_key_of("::ffff:10.0.0.1").as_deref(),
            Some("10.0.0.1")
        );
        assert_eq!(source_key_of("hot"), None);
    }
}
