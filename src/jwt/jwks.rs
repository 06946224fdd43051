//! A JWKS (JSON Web Key Set) loaded from a file or a URL and refreshed: on an
//! interval, and when a token names a key id the set does not hold (key rotation at the
//! issuer), at most once per [`Jwks::min_refresh_interval`] so that tokens with made-up `kid`s
//! cannot make the gateway hammer the issuer.

use std::fmt;
#[cfg(feature = "tls")]
use std::path::Path;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
#[cfg(feature = "tls")]
use http::uri::Scheme;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use super::key::{parse_jwks, JwtKey, KeyError};
#[cfg(feature = "tls")]
use crate::upstream::tls::{self, Pem, TlsSettings};
#[cfg(feature = "tls")]
use crate::upstream::TlsRoots;

/// How often a JWKS is reloaded by default.
pub const DEFAULT_JWKS_REFRESH: Duration = Duration::from_secs(10 * 60);

/// The least time between two reloads by default (the rate limit of refreshes for unknown
/// key ids, and of retries after a failed load).
pub const DEFAULT_JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

/// How long one JWKS fetch may take by default.
pub const DEFAULT_JWKS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest JWKS document read, in bytes.
const MAX_JWKS_LEN: usize = 256 * 1024;

#[derive(Clone)]
enum Source {
    File(PathBuf),
    Url(Uri),
}

/// Where a JWKS comes from and how it is kept fresh; give it to
/// [`JwtConfig::jwks`](super::JwtConfig::jwks).
///
/// The URL is fetched with the crate's hyper client (HTTP/1.1). With the `tls` feature (on by
/// default) an `https://` URL is fetched over TLS with the same rustls client configuration as
/// an `https://` `ElectricUpstream`: verification always on, Mozilla's roots by default
/// (`tls_roots`), private CAs with `ca_pem` and `ca_pem_file` (those three methods come with
/// the feature). Without `tls`, `https://` is refused. Plain `http://` is for an
/// issuer on loopback or a sidecar on the same host only: across a network anyone on the path
/// could hand the gateway their own keys, and so mint any token. A file that something else
/// keeps current is the other way.
///
/// The set is first loaded by the first request that needs it. A load that fails (including
/// a document that parses but holds no usable key, such as `{"keys": []}`) keeps the keys
/// loaded before (none, before the first success: tokens are then refused as
/// [`UnknownKey`](super::JwtError::UnknownKey)) and is logged at warn level; the next attempt
/// waits out [`min_refresh_interval`](Self::min_refresh_interval).
#[derive(Clone)]
#[must_use]
pub struct Jwks {
    source: Source,
    refresh_every: Duration,
    min_refresh_interval: Duration,
    fetch_timeout: Duration,
    #[cfg(feature = "tls")]
    tls: TlsSettings,
}

impl fmt::Debug for Jwks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let source = match &self.source {
            Source::File(path) => format!("file {}", path.display()),
            // The URL's host and path only: a query could hold an access key.
            Source::Url(uri) => format!(
                "url {}{}",
                uri.authority().map_or("", |a| a.as_str()),
                uri.path()
            ),
        };
        let mut debug = f.debug_struct("Jwks");
        debug
            .field("source", &source)
            .field("refresh_every", &self.refresh_every)
            .field("min_refresh_interval", &self.min_refresh_interval);
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls);
        debug.finish_non_exhaustive()
    }
}

impl Jwks {
    /// A JWKS file, read when the layer first needs keys and again on every refresh.
    pub fn from_file(path: impl Into<PathBuf>) -> Self {
        Self::with(Source::File(path.into()))
    }

    /// A JWKS at an `https://` URL (feature `tls`, on by default), or at an `http://` URL on
    /// loopback or a same-host sidecar (see [`Jwks`]).
    ///
    /// Without the `tls` feature an `https://` URL is refused with
    /// [`KeyError::BadUrl`] naming the feature.
    pub fn from_url(url: &str) -> Result<Self, KeyError> {
        let uri: Uri = url
            .parse()
            .map_err(|_| KeyError::BadUrl("does not parse"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if cfg!(feature = "tls") => {}
            Some("https") => {
                return Err(KeyError::BadUrl(
                    "https:// needs the crate's `tls` feature (on by default)",
                ))
            }
            _ => return Err(KeyError::BadUrl("must be https:// or http://")),
        }
        if uri.authority().is_none() {
            return Err(KeyError::BadUrl("has no host"));
        }
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(KeyError::BadUrl("must not hold credentials"));
        }
        Ok(Self::with(Source::Url(uri)))
    }

    /// How often the set is reloaded (default [`DEFAULT_JWKS_REFRESH`]).
    pub fn refresh_every(mut self, every: Duration) -> Self {
        self.refresh_every = every;
        self
    }

    /// The least time between two reloads (default [`DEFAULT_JWKS_MIN_REFRESH`]): a token
    /// naming an unknown `kid` triggers a reload only when the last one is older than this.
    pub fn min_refresh_interval(mut self, interval: Duration) -> Self {
        self.min_refresh_interval = interval;
        self
    }

    /// How long one fetch of the URL may take (default [`DEFAULT_JWKS_FETCH_TIMEOUT`]).
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Where the trusted roots of an `https://` URL come from (default
    /// [`TlsRoots::WebPki`], Mozilla's); CAs given with [`ca_pem`](Self::ca_pem) are trusted
    /// in addition. As for [`ElectricUpstream`](crate::ElectricUpstream).
    #[cfg(feature = "tls")]
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls.roots = Some(roots);
        self
    }

    /// Trusts the CA certificates in `pem` for an `https://` URL: an issuer whose certificate
    /// a private CA issues. Checked when the layer is built:
    /// [`JwtLayer::new`](super::JwtLayer::new) refuses a PEM that holds no usable CA
    /// ([`KeyError::JwksTls`]), and TLS settings on a file or an `http://` URL
    /// ([`KeyError::BadUrl`]).
    #[cfg(feature = "tls")]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.cas.push(Pem::bytes(pem));
        self
    }

    /// [`ca_pem`](Self::ca_pem) from a file, read when the layer is built.
    #[cfg(feature = "tls")]
    pub fn ca_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.tls.cas.push(Pem::file(path));
        self
    }

    fn with(source: Source) -> Self {
        Self {
            source,
            refresh_every: DEFAULT_JWKS_REFRESH,
            min_refresh_interval: DEFAULT_JWKS_MIN_REFRESH,
            fetch_timeout: DEFAULT_JWKS_FETCH_TIMEOUT,
            #[cfg(feature = "tls")]
            tls: TlsSettings::default(),
        }
    }

    /// The connector for the URL: TLS with these settings for `https://`.
    #[cfg(feature = "tls")]
    fn connector(&self) -> Result<Connector, KeyError> {
        let https =
            matches!(&self.source, Source::Url(uri) if uri.scheme() == Some(&Scheme::HTTPS));
        let config = if https {
            Some(self.tls.client_config().map_err(KeyError::JwksTls)?)
        } else if self.tls.is_set() {
            return Err(KeyError::BadUrl("TLS settings are for https:// URLs only"));
        } else {
            None
        };
        tls::http1_connector(HttpConnector::new(), config).map_err(KeyError::JwksTls)
    }

    #[cfg(not(feature = "tls"))]
    fn connector(&self) -> Result<Connector, KeyError> {
        Ok(HttpConnector::new())
    }
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

#[derive(Default)]
struct Loads {
    last_attempt: Option<Instant>,
    last_success: Option<Instant>,
}

/// A [`Jwks`] in use: the current keys and the bookkeeping of reloads.
pub(crate) struct JwksKeys {
    config: Jwks,
    keys: RwLock<Arc<Vec<JwtKey>>>,
    // Held across a reload, so that concurrent requests wait for one fetch instead of each
    // starting their own.
    loads: tokio::sync::Mutex<Loads>,
    client: Client<Connector, Empty<Bytes>>,
}

impl JwksKeys {
    /// Fails on TLS settings that cannot be used (feature `tls`).
    pub(crate) fn new(config: Jwks) -> Result<Self, KeyError> {
        let client = Client::builder(TokioExecutor::new()).build(config.connector()?);
        Ok(Self {
            config,
            keys: RwLock::new(Arc::new(Vec::new())),
            loads: tokio::sync::Mutex::new(Loads::default()),
            client,
        })
    }

    /// The keys as last loaded.
    pub(crate) fn current(&self) -> Arc<Vec<JwtKey>> {
        match self.keys.read() {
            Ok(keys) => Arc::clone(&keys),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Reloads when the set was never loaded or is older than the refresh interval (and the
    /// last attempt is older than the rate limit).
    pub(crate) async fn refresh_if_stale(&self) {
        let now = Instant::now();
        let mut loads = match self.loads.try_lock() {
            Ok(loads) => loads,
            // Someone is reloading: with keys in hand, use them rather than wait.
            Err(_) if !self.current().is_empty() => return,
            Err(_) => self.loads.lock().await,
        };
        let stale = loads
            .last_success
            .is_none_or(|at| now.duration_since(at) >= self.config.refresh_every);
        if stale && self.may_try(&loads, now) {
            self.reload(&mut loads, now).await;
        }
    }

    /// Reloads for a `kid` the set does not hold, unless the last attempt is too recent.
    /// Says whether it reloaded.
    pub(crate) async fn refresh_for_unknown_kid(&self) -> bool {
        let now = Instant::now();
        let mut loads = self.loads.lock().await;
        if !self.may_try(&loads, now) {
            return false;
        }
        self.reload(&mut loads, now).await;
        true
    }

    fn may_try(&self, loads: &Loads, now: Instant) -> bool {
        loads
            .last_attempt
            .is_none_or(|at| now.duration_since(at) >= self.config.min_refresh_interval)
    }

    async fn reload(&self, loads: &mut Loads, now: Instant) {
        loads.last_attempt = Some(now);
        match self.load().await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "JWKS loaded");
                loads.last_success = Some(now);
                let keys = Arc::new(keys);
                match self.keys.write() {
                    Ok(mut current) => *current = keys,
                    Err(poisoned) => *poisoned.into_inner() = keys,
                }
            }
            // The keys loaded before stay in use.
            Err(reason) => {
                tracing::warn!(%reason, "JWKS could not be loaded; keeping the keys it had")
            }
        }
    }

    async fn load(&self) -> Result<Vec<JwtKey>, String> {
        let document = match &self.config.source {
            Source::File(path) => std::fs::read(path).map_err(|error| error.kind().to_string())?,
            Source::Url(uri) => tokio::time::timeout(self.config.fetch_timeout, self.fetch(uri))
                .await
                .map_err(|_| "timed out".to_owned())??,
        };
        let keys = parse_jwks(&document).map_err(|error| error.to_string())?;
        // A set with no key this layer can use is a broken or misconfigured issuer, not a
        // rotation to nothing: taking it would refuse every token until the next good load.
        if keys.is_empty() {
            return Err("the document holds no usable key".to_owned());
        }
        Ok(keys)
    }

    async fn fetch(&self, uri: &Uri) -> Result<Vec<u8>, String> {
        let request = Request::get(uri.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|_| "could not build the request".to_owned())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|_| "the request failed".to_owned())?;
        if response.status() != StatusCode::OK {
            return Err(format!("answered {}", response.status().as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_LEN)
            .collect()
            .await
            .map_err(|_| "the body could not be read (or is too large)".to_owned())?;
        Ok(body.to_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_urls_need_the_tls_feature_and_http_stays_allowed() {
        let https = Jwks::from_url("https://issuer.example/.well-known/jwks.json");
        #[cfg(feature = "tls")]
        assert!(https.is_ok());
        #[cfg(not(feature = "tls"))]
        assert_eq!(
            https.unwrap_err(),
            KeyError::BadUrl("https:// needs the crate's `tls` feature (on by default)")
        );
        assert!(Jwks::from_url("http://127.0.0.1:8080/.well-known/jwks.json").is_ok());
        assert_eq!(
            Jwks::from_url("ftp://issuer.example/jwks.json").unwrap_err(),
            KeyError::BadUrl("must be https:// or http://")
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_settings_are_for_https_urls_only() {
        let ca = b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec();
        let file = Jwks::from_file("/etc/jwks.json").ca_pem(ca);
        assert!(matches!(JwksKeys::new(file), Err(KeyError::BadUrl(_))));
        let http = Jwks::from_url("http://127.0.0.1:8080/jwks.json")
            .unwrap()
            .tls_roots(TlsRoots::System);
        assert!(matches!(JwksKeys::new(http), Err(KeyError::BadUrl(_))));
        let https = Jwks::from_url("https://issuer.example/jwks.json")
            .unwrap()
            .tls_roots(TlsRoots::CustomOnly);
        assert!(matches!(JwksKeys::new(https), Err(KeyError::JwksTls(_))));
    }
}
