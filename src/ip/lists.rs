//! The allow, deny and trusted-proxy sets, and the handle that replaces them at run time.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, PoisonError, RwLock};

use super::cidr::{Cidr, CidrError, CidrSet};

/// The networks an [`IpAllowLayer`](super::IpAllowLayer) checks: who is allowed, who is
/// denied (deny wins), and which peers are proxies whose forwarding headers are believed.
///
/// A new `IpLists` allows nothing: an empty allow set is a closed door unless
/// [`allow_all`](Self::allow_all) says otherwise. The text methods take one network or a
/// comma-separated list (`"10.0.0.0/8, 2001:db8::/32, 192.0.2.7"`; a blank text adds
/// nothing), so a list from the environment is one call, and they return an error for text
/// that is not a network (see [`Cidr`] for the rules).
///
/// ```
/// use tower_electric::ip::IpLists;
///
/// let lists = IpLists::new()
///     .allow("10.0.0.0/8, 2001:db8::/32")?
///     .deny("10.66.0.0/16")?
///     .trust_proxies("192.0.2.0/24")?;
/// assert!(lists.is_allowed("10.1.2.3".parse()?));
/// assert!(!lists.is_allowed("10.66.0.1".parse()?));
/// assert!(!lists.is_allowed("203.0.113.9".parse()?));
/// assert!(IpLists::new().allow("10.0.0.0/33").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IpLists {
    allow: CidrSet,
    allow_all: bool,
    deny: CidrSet,
    trusted_proxies: CidrSet,
}

impl IpLists {
    /// Lists that allow nothing and trust no proxy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows the networks in `cidrs` (one, or a comma-separated list).
    pub fn allow(self, cidrs: impl AsRef<str>) -> Result<Self, CidrError> {
        Ok(self.allow_cidrs(Cidr::parse_list(cidrs.as_ref())?))
    }

    /// Allows the given networks.
    #[must_use]
    pub fn allow_cidrs(mut self, cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        self.allow.extend(cidrs);
        self
    }

    /// Allows every address not denied. Without this, an empty allow set allows nothing.
    #[must_use]
    pub fn allow_all(mut self) -> Self {
        self.allow_all = true;
        self
    }

    /// Denies the networks in `cidrs` (one, or a comma-separated list), even inside allowed
    /// networks.
    pub fn deny(self, cidrs: impl AsRef<str>) -> Result<Self, CidrError> {
        Ok(self.deny_cidrs(Cidr::parse_list(cidrs.as_ref())?))
    }

    /// Denies the given networks, even inside allowed networks.
    #[must_use]
    pub fn deny_cidrs(mut self, cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        self.deny.extend(cidrs);
        self
    }

    /// Trusts the peers in `cidrs` (one, or a comma-separated list) as proxies: their
    /// forwarding headers are read. Nobody else's are.
    pub fn trust_proxies(self, cidrs: impl AsRef<str>) -> Result<Self, CidrError> {
        Ok(self.trust_proxy_cidrs(Cidr::parse_list(cidrs.as_ref())?))
    }

    /// Trusts the given networks as proxies.
    #[must_use]
    pub fn trust_proxy_cidrs(mut self, cidrs: impl IntoIterator<Item = Cidr>) -> Self {
        self.trusted_proxies.extend(cidrs);
        self
    }

    /// Whether a client at `addr` may pass: not denied, and allowed (or all allowed).
    /// IPv4-mapped IPv6 addresses are checked as IPv4.
    pub fn is_allowed(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        !self.deny.contains(addr) && (self.allow_all || self.allow.contains(addr))
    }

    /// Whether `addr` is a trusted proxy.
    pub fn is_trusted_proxy(&self, addr: IpAddr) -> bool {
        self.trusted_proxies.contains(addr.to_canonical())
    }

    /// Whether `addr` is in the deny set (for the log line: denied, or just not allowed).
    pub(crate) fn is_denied(&self, addr: IpAddr) -> bool {
        self.deny.contains(addr.to_canonical())
    }

    /// The allowed networks.
    pub fn allowed(&self) -> &[Cidr] {
        self.allow.as_slice()
    }

    /// Whether every address not denied is allowed.
    pub fn allows_all(&self) -> bool {
        self.allow_all
    }

    /// The denied networks.
    pub fn denied(&self) -> &[Cidr] {
        self.deny.as_slice()
    }

    /// The trusted proxies.
    pub fn trusted_proxies(&self) -> &[Cidr] {
        self.trusted_proxies.as_slice()
    }
}

impl fmt::Debug for IpLists {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("IpLists");
        if self.allow_all {
            debug.field("allow", &"all");
        } else {
            debug.field("allow", &self.allow);
        }
        debug
            .field("deny", &self.deny)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// A shared handle to the lists of a running [`IpAllowLayer`](super::IpAllowLayer): replace
/// them (on a configuration reload, say) without rebuilding the service stack.
///
/// Every service the layer built sees the new lists from its next request on; a request
/// already being decided finishes with the lists it started with. A request takes a read lock
/// just long enough to clone an `Arc`: no allocation, no copy of the lists.
///
/// ```
/// use tower_electric::ip::{IpAllowLayer, IpLists};
///
/// let layer = IpAllowLayer::new(IpLists::new().allow("10.0.0.0/8")?);
/// let handle = layer.handle();
/// // Later, on a configuration reload:
/// handle.replace(IpLists::new().allow("10.0.0.0/8, 192.168.0.0/16")?);
/// assert!(handle.current().is_allowed("192.168.1.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct IpListsHandle {
    shared: Arc<RwLock<Arc<IpLists>>>,
}

impl IpListsHandle {
    pub(crate) fn new(lists: IpLists) -> Self {
        Self {
            shared: Arc::new(RwLock::new(Arc::new(lists))),
        }
    }

    /// Replaces the lists; the next request is decided with `lists`.
    pub fn replace(&self, lists: IpLists) {
        let lists = Arc::new(lists);
        // A poisoned lock still holds a whole `Arc` (it is only ever swapped), so it is safe
        // to keep using; the previous lists are dropped after the lock is released.
        let previous = {
            let mut guard = self.shared.write().unwrap_or_else(PoisonError::into_inner);
            std::mem::replace(&mut *guard, lists)
        };
        drop(previous);
    }

    /// The lists in force now.
    pub fn current(&self) -> Arc<IpLists> {
        Arc::clone(&self.shared.read().unwrap_or_else(PoisonError::into_inner))
    }
}

impl fmt::Debug for IpListsHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("IpListsHandle")
            .field(&*self.current())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn empty_allow_set_allows_nothing() {
        let lists = IpLists::new();
        assert!(!lists.is_allowed(ip("127.0.0.1")));
        assert!(!lists.is_allowed(ip("::1")));
    }

    #[test]
    fn allow_all_is_explicit_and_deny_still_wins() {
        let lists = IpLists::new().allow_all().deny("10.0.0.0/8").unwrap();
        assert!(lists.is_allowed(ip("203.0.113.1")));
        assert!(!lists.is_allowed(ip("10.1.1.1")));
        assert!(!lists.is_allowed(ip("::ffff:10.1.1.1")));
    }

    #[test]
    fn deny_inside_allow_wins() {
        let lists = IpLists::new()
            .allow("10.0.0.0/8")
            .unwrap()
            .deny("10.0.0.7")
            .unwrap();
        assert!(lists.is_allowed(ip("10.0.0.6")));
        assert!(!lists.is_allowed(ip("10.0.0.7")));
    }

    #[test]
    fn replacement_is_seen_through_every_clone() {
        let handle = IpListsHandle::new(IpLists::new().allow("10.0.0.0/8").unwrap());
        let other = handle.clone();
        let before = other.current();
        handle.replace(IpLists::new().allow("192.168.0.0/16").unwrap());
        assert!(!other.current().is_allowed(ip("10.0.0.1")));
        assert!(other.current().is_allowed(ip("192.168.0.1")));
        // A snapshot taken before the swap keeps deciding with the lists it was taken from.
        assert!(before.is_allowed(ip("10.0.0.1")));
    }

    #[test]
    fn debug_lists_the_networks() {
        let lists = IpLists::new().allow("10.0.0.0/8").unwrap();
        assert_eq!(
            format!("{lists:?}"),
            "IpLists { allow: [10.0.0.0/8], deny: [], trusted_proxies: [] }"
        );
    }
}
