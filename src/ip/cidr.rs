//! Networks in CIDR notation, and comma-separated lists of them.
//!
//! Written here with `std::net` rather than taken from a crate: the type is a few lines, and
//! keeping it ours keeps helper-crate types out of the public API.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::rejection::echo;

/// A network in CIDR notation: `10.0.0.0/8`, `2001:db8::/32`, or one address (`10.1.2.3`,
/// `::1`, a `/32` or `/128`).
///
/// Parsing is strict, so that a typo in configuration is an error rather than a silently
/// different rule:
/// - the prefix length must fit the family (`/33` on IPv4 is refused);
/// - **host bits must be zero**: `10.1.0.0/8` is refused (the error names `10.0.0.0/8`),
///   because whoever wrote it may have meant `10.1.0.0/16`;
/// - zone ids (`fe80::1%eth0`) and ports are refused: a rule names networks, not interfaces.
///
/// IPv4-mapped IPv6 networks (`::ffff:10.0.0.0/104`) are stored as the IPv4 network they name
/// (`10.0.0.0/8`), the same way client addresses are canonicalised, so both spellings match
/// the same clients.
///
/// ```
/// use tower_electric::ip::Cidr;
///
/// let net: Cidr = "10.0.0.0/8".parse()?;
/// assert!(net.contains("10.20.30.40".parse()?));
/// assert!(net.contains("::ffff:10.20.30.40".parse()?));
/// assert!("10.1.0.0/8".parse::<Cidr>().is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: Network,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Network {
    V4 { bits: u32, prefix: u8 },
    V6 { bits: u128, prefix: u8 },
}

/// Why a CIDR text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// An entry of a list is empty (`10.0.0.0/8,,::1`).
    #[error("empty entry in an address list")]
    Empty,
    /// The address part is not an IPv4 or IPv6 address.
    #[error("`{text}` is not an IP address or CIDR network")]
    InvalidAddress {
        /// The entry, cut to a short length.
        text: String,
    },
    /// The prefix length is not a number, or too long for the address family.
    #[error("`{text}` has an invalid prefix length (at most {max})")]
    InvalidPrefix {
        /// The entry, cut to a short length.
        text: String,
        /// The longest prefix of the entry's address family.
        max: u8,
    },
    /// The address has bits set beyond the prefix.
    #[error("`{text}` has host bits set; the network is `{network}`")]
    HostBitsSet {
        /// The entry, cut to a short length.
        text: String,
        /// The network the prefix names.
        network: Cidr,
    },
}

impl Cidr {
    /// The network of `addr` with a prefix of `prefix` bits.
    ///
    /// Refused if the prefix is longer than the family allows or `addr` has host bits set.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let text = || format!("{addr}/{prefix}");
        let network = match addr {
            IpAddr::V4(v4) => {
                if prefix > 32 {
                    return Err(CidrError::InvalidPrefix {
                        text: text(),
                        max: 32,
                    });
                }
                Network::V4 {
                    bits: u32::from(v4),
                    prefix,
                }
            }
            IpAddr::V6(_) if prefix > 128 => {
                return Err(CidrError::InvalidPrefix {
                    text: text(),
                    max: 128,
                })
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Network::V4 {
                    bits: u32::from(v4),
                    prefix: prefix - 96,
                },
                _ => Network::V6 {
                    bits: u128::from(v6),
                    prefix,
                },
            },
        };
        let cidr = Self { network };
        let masked = cidr.masked();
        if masked != cidr {
            return Err(CidrError::HostBitsSet {
                text: text(),
                network: masked,
            });
        }
        Ok(cidr)
    }

    /// The network's first address.
    pub fn addr(&self) -> IpAddr {
        match self.network {
            Network::V4 { bits, .. } => IpAddr::V4(Ipv4Addr::from(bits)),
            Network::V6 { bits, .. } => IpAddr::V6(Ipv6Addr::from(bits)),
        }
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        match self.network {
            Network::V4 { prefix, .. } | Network::V6 { prefix, .. } => prefix,
        }
    }

    /// Whether `addr` is in this network. IPv4-mapped IPv6 addresses match as the IPv4
    /// address they carry.
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.network, addr.to_canonical()) {
            (Network::V4 { bits, prefix }, IpAddr::V4(addr)) => {
                u32::from(addr) & mask_v4(prefix) == bits
            }
            (Network::V6 { bits, prefix }, IpAddr::V6(addr)) => {
                u128::from(addr) & mask_v6(prefix) == bits
            }
            _ => false,
        }
    }

    /// Parses a comma-separated list (`"10.0.0.0/8, ::1"`); a blank text is the empty list.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, CidrError> {
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        text.split(',').map(|entry| entry.trim().parse()).collect()
    }

    fn masked(self) -> Self {
        let network = match self.network {
            Network::V4 { bits, prefix } => Network::V4 {
                bits: bits & mask_v4(prefix),
                prefix,
            },
            Network::V6 { bits, prefix } => Network::V6 {
                bits: bits & mask_v6(prefix),
                prefix,
            },
        };
        Self { network }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix.min(128)))
        .unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Err(CidrError::Empty);
        }
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| CidrError::InvalidAddress {
            text: echo(text).into_owned(),
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_text {
            None => max,
            // `u8::from_str` would take a leading `+`; a prefix is digits only.
            Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().unwrap_or(u8::MAX)
            }
            Some(_) => u8::MAX,
        };
        if prefix > max {
            return Err(CidrError::InvalidPrefix {
                text: echo(text).into_owned(),
                max,
            });
        }
        Self::new(addr, prefix).map_err(|error| match error {
            CidrError::HostBitsSet { network, .. } => CidrError::HostBitsSet {
                text: echo(text).into_owned(),
                network,
            },
            other => other,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix_len())
    }
}

impl fmt::Debug for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A set of networks, matched by a linear scan: allow-lists are short, and a scan of a few
/// dozen integer comparisons costs less than any index.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct CidrSet {
    networks: Vec<Cidr>,
}

impl CidrSet {
    pub(crate) fn extend(&mut self, networks: impl IntoIterator<Item = Cidr>) {
        for network in networks {
            if !self.networks.contains(&network) {
                self.networks.push(network);
            }
        }
    }

    /// Whether any network contains `addr`, which the caller has canonicalised.
    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(addr))
    }

    pub(crate) fn as_slice(&self) -> &[Cidr] {
        &self.networks
    }
}

impl fmt::Debug for CidrSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.networks).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        text.parse().unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn single_addresses_are_host_networks() {
        assert_eq!(cidr("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(cidr("::1").to_string(), "::1/128");
        assert!(cidr("10.1.2.3").contains(ip("10.1.2.3")));
        assert!(!cidr("10.1.2.3").contains(ip("10.1.2.4")));
    }

    #[test]
    fn networks_contain_their_range_only() {
        let net = cidr("10.0.0.0/8");
        assert!(net.contains(ip("10.0.0.0")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        let net6 = cidr("2001:db8::/32");
        assert!(net6.contains(ip("2001:db8:ffff::1")));
        assert!(!net6.contains(ip("2001:db9::1")));
        assert!(!net6.contains(ip("10.0.0.1")));
        assert!(!net.contains(ip("2001:db8::1")));
    }

    #[test]
    fn zero_prefix_matches_its_whole_family() {
        assert!(cidr("0.0.0.0/0").contains(ip("255.1.2.3")));
        assert!(!cidr("0.0.0.0/0").contains(ip("::1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(!cidr("::/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn mapped_addresses_and_networks_are_ipv4() {
        assert!(cidr("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert_eq!(cidr("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.9.9.9")));
    }

    #[test]
    fn bad_texts_are_errors_not_panics() {
        assert!(matches!(
            "10.0.0.0/33".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix { max: 32, .. })
        ));
        assert!(matches!(
            "::/129".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix { max: 128, .. })
        ));
        for bad in [
            "nope",
            "10.0.0",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "fe80::1%eth0",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert!(matches!(
            "10.0.0.0/99999999999999999999".parse::<Cidr>(),
            Err(CidrError::InvalidPrefix { .. })
        ));
        assert!(matches!(
            "nope".parse::<Cidr>(),
            Err(CidrError::InvalidAddress { .. })
        ));
    }

    #[test]
    fn host_bits_are_refused_and_the_network_named() {
        match "10.1.0.0/8".parse::<Cidr>() {
            Err(CidrError::HostBitsSet { network, .. }) => {
                assert_eq!(network.to_string(), "10.0.0.0/8")
            }
            other => panic!("{other:?}"),
        }
        assert!("2001:db8::1/32".parse::<Cidr>().is_err());
    }

    #[test]
    fn lists_split_on_commas_and_blank_is_empty() {
        let list = Cidr::parse_list(" 127.0.0.0/8, ::1/128 ").unwrap();
        assert_eq!(list, vec![cidr("127.0.0.0/8"), cidr("::1")]);
        assert!(Cidr::parse_list("  ").unwrap().is_empty());
        assert_eq!(Cidr::parse_list("10.0.0.0/8,,::1"), Err(CidrError::Empty));
    }

    #[test]
    fn error_messages_cut_long_entries() {
        let long = "x".repeat(1000);
        let message = long.parse::<Cidr>().unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
    }
}
