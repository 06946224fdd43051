//! [`Builder`]: the settings of an [`ElectricUpstream`] and the checks `build` makes (the
//! upstream URL, the TLS settings).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri, Version};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::headers::Forwarding;
use super::http1::Http1Client;
#[cfg(feature = "tls")]
use super::{tls, TlsError, TlsRoots};
use super::{
    Connector, ElectricUpstream, Inner, Transport, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
};
use crate::protocol::headers::SHAPE_PATH;

/// Configures an [`ElectricUpstream`]; made by [`ElectricUpstream::builder`].
///
/// `Debug` shows the base URL's scheme, host and path only: credentials in it (`user:pw@`)
/// and a query (`?secret=`), which [`build`](Self::build) refuses, are `[redacted]`, and the
/// TLS settings name files, never a key's bytes.
#[derive(Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct Builder {
    base_url: String,
    path: String,
    connect_timeout: Duration,
    idle_timeout: Duration,
    versions: Versions,
    forwarding: Forwarding,
    #[cfg(feature = "tls")]
    tls: tls::TlsSettings,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut debug = f.debug_struct("Builder");
        debug
            .field("base_url", &redacted_url(&self.base_url))
            .field("path", &redacted_url_path(&self.path))
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("versions", &self.versions)
            .field("forwarding", &self.forwarding);
        #[cfg(feature = "tls")]
        debug.field("tls", &self.tls);
        debug.finish()
    }
}

/// `url` for `Debug`: scheme, host (and port) and path, with userinfo and a query or fragment
/// replaced by `[redacted]`; a URL that does not parse is `[redacted]` whole.
fn redacted_url(url: &str) -> String {
    let Ok(uri) = Uri::try_from(url) else {
        return "[redacted]".to_owned();
    };
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return "[redacted]".to_owned();
    };
    let (userinfo, host) = match authority.as_str().rsplit_once('@') {
        Some((_, host)) => ("[redacted]@", host),
        None => ("", authority.as_str()),
    };
    let path = redacted_url_path(uri.path());
    let query = if uri.query().is_some() || url.contains('#') {
        "?[redacted]"
    } else {
        ""
    };
    format!("{scheme}://{userinfo}{host}{path}{query}")
}

/// A path for `Debug`: as it is, or `[redacted]` from a `?` or `#` on (`build` refuses those).
fn redacted_url_path(path: &str) -> String {
    match path.find(['?', '#']) {
        Some(at) => format!("{}[redacted]", &path[..at]),
        None => path.to_owned(),
    }
}

/// Which HTTP versions the upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Versions {
    /// `http://`: HTTP/1.1. `https://`: h2 or HTTP/1.1, as ALPN chooses per connection.
    Auto,
    /// HTTP/1.1 only, also over TLS.
    Http1,
    /// HTTP/2 only: h2c with prior knowledge over plain TCP, h2 by ALPN over TLS.
    Http2,
}

impl Builder {
    pub(super) fn new(base_url: String) -> Self {
        Self {
            base_url,
            path: SHAPE_PATH.to_owned(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            versions: Versions::Auto,
            forwarding: Forwarding::default(),
            #[cfg(feature = "tls")]
            tls: tls::TlsSettings::default(),
        }
    }

    /// The path every request goes to, after the base URL's own path. Default `/v1/shape`.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// How long connecting to Electric may take (with the `tls` feature, the TLS handshake
    /// included). Default 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long Electric may stay silent: before the response head (then 504), and between
    /// two body frames (then the body ends with [`BodyError::IdleTimeout`](super::BodyError::IdleTimeout)). Default 90 s;
    /// keep it above Electric's 20 s long-poll and 60 s SSE windows.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Speak HTTP/2 only. Default `false`. Over `http://` that is h2c with prior knowledge
    /// (Electric must be listening for h2c); over `https://` (feature `tls`), ALPN offers `h2`
    /// alone, so a server that only speaks HTTP/1.1 fails the handshake (a 502).
    ///
    /// One connection then carries every request, so a held long-poll costs a stream instead
    /// of a socket of its own; in gateway memory that is no saving (in `benches/longpoll.sh`,
    /// 14.7 KiB per held poll over h2c, 8.9 KiB over HTTP/1.1 with the upstream's own client,
    /// both with HTTP/1.1 clients). And the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
    /// caps how many requests are in flight at once (many servers default to 100–200) and the
    /// rest wait in the gateway, so a gateway holding more long-polls than that cap must use
    /// HTTP/1.1, or an upstream configured for more streams. Setting this replaces
    /// [`http1_only`](Self::http1_only).
    pub fn http2_only(mut self, enabled: bool) -> Self {
        self.versions = match (enabled, self.versions) {
            (true, _) => Versions::Http2,
            (false, Versions::Http2) => Versions::Auto,
            (false, versions) => versions,
        };
        self
    }

    /// Speak HTTP/1.1 only, also over `https://`, where ALPN then offers `http/1.1` alone.
    /// Default `false`: over TLS, a server that offers h2 gets h2.
    ///
    /// Over h2 every request shares one connection, and the server's stream cap limits how
    /// many long-polls are held at once (see [`http2_only`](Self::http2_only)); over HTTP/1.1
    /// each held long-poll has a pooled connection of its own and no such cap. A gateway that
    /// holds more long-polls than Electric's (or its load balancer's) h2 stream cap wants this.
    /// Over `http://` this changes nothing: plain HTTP is HTTP/1.1 unless `http2_only`.
    /// Setting this replaces [`http2_only`](Self::http2_only).
    ///
    /// ```
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), tower_electric::upstream::BuildError> {
    /// let upstream = ElectricUpstream::builder("https://electric.example")
    ///     .http1_only(true)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    pub fn http1_only(mut self, enabled: bool) -> Self {
        self.versions = match (enabled, self.versions) {
            (true, _) => Versions::Http1,
            (false, Versions::Http1) => Versions::Auto,
            (false, versions) => versions,
        };
        self
    }

    /// Forward the client's `Authorization` header. Default `false`: it is the gateway's
    /// credential, not Electric's.
    pub fn forward_authorization(mut self, enabled: bool) -> Self {
        self.forwarding.authorization = enabled;
        self
    }

    /// Forward the client's `Cookie` header. Default `false`.
    pub fn forward_cookie(mut self, enabled: bool) -> Self {
        self.forwarding.cookie = enabled;
        self
    }

    /// Forward the host the client addressed as `Host`. Default `false`: `Host` names the
    /// upstream.
    pub fn forward_host(mut self, enabled: bool) -> Self {
        self.forwarding.host = enabled;
        self
    }

    /// The roots an `https://` upstream verifies Electric's certificate with. Default
    /// [`TlsRoots::WebPki`]. CAs given with [`ca_pem`](Self::ca_pem) or
    /// [`ca_pem_file`](Self::ca_pem_file) are trusted as well.
    ///
    /// ```
    /// use tower_electric::upstream::TlsRoots;
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), tower_electric::upstream::BuildError> {
    /// let upstream = ElectricUpstream::builder("https://electric.internal")
    ///     .tls_roots(TlsRoots::System)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls.roots = Some(roots);
        self
    }

    /// Also trust the CA certificates in `pem` (one or more `CERTIFICATE` sections; other
    /// sections are skipped): a self-hosted Electric with a certificate from a private CA.
    /// Checked when building: PEM without a certificate is [`TlsError::NoCertificate`].
    ///
    /// ```
    /// use tower_electric::upstream::TlsRoots;
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let ca_pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls/example-ca.pem"))?;
    /// // `ca_pem`: the PEM text of the CA that issued Electric's certificate.
    /// let upstream = ElectricUpstream::builder("https://electric.internal:3000")
    ///     .tls_roots(TlsRoots::CustomOnly) // trust this CA and no other
    ///     .ca_pem(ca_pem)
    ///     .build()?;
    /// # let _ = upstream;
    /// // Not a certificate: refused when building, not on the first request.
    /// assert!(ElectricUpstream::builder("https://electric.internal")
    ///     .ca_pem("not a certificate")
    ///     .build()
    ///     .is_err());
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.cas.push(tls::Pem::bytes(pem));
        self
    }

    /// Also trust the CA certificates in the PEM file at `path`, read by
    /// [`build`](Self::build). As [`ca_pem`](Self::ca_pem); a file that cannot be read is
    /// [`TlsError::ReadFile`], naming the path.
    ///
    /// ```
    /// use tower_electric::upstream::{BuildError, TlsError};
    /// use tower_electric::ElectricUpstream;
    ///
    /// let built = ElectricUpstream::builder("https://electric.internal")
    ///     .ca_pem_file("/etc/electric/no-such-ca.pem")
    ///     .build();
    /// assert!(matches!(built, Err(BuildError::Tls(TlsError::ReadFile { .. }))));
    /// ```
    #[cfg(feature = "tls")]
    pub fn ca_pem_file(mut self, path: impl AsRef<std::path::Path>) -> Self {
        self.tls.cas.push(tls::Pem::file(path));
        self
    }

    /// Present this client certificate when Electric (or the TLS proxy in front of it) asks
    /// for one (mTLS). `cert_pem` holds the certificate chain, leaf first; `key_pem` its
    /// private key (PKCS#8, PKCS#1 or SEC1). The key's bytes never appear in `Debug` or in
    /// errors. Checked when building: a key that does not match the certificate is
    /// [`TlsError::InvalidClientIdentity`].
    ///
    /// ```no_run
    /// use tower_electric::ElectricUpstream;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cert = std::fs::read("/etc/gateway/client.pem")?;
    /// let key = std::fs::read("/etc/gateway/client.key")?;
    /// let upstream = ElectricUpstream::builder("https://electric.internal")
    ///     .client_identity_pem(cert, key)
    ///     .build()?;
    /// # let _ = upstream;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_identity_pem(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.identity = Some((tls::Pem::bytes(cert_pem), tls::Pem::bytes(key_pem)));
        self
    }

    /// As [`client_identity_pem`](Self::client_identity_pem), from two PEM files read by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use tower_electric::upstream::{BuildError, PemInput, TlsError};
    /// use tower_electric::ElectricUpstream;
    ///
    /// let built = ElectricUpstream::builder("https://electric.internal")
    ///     .client_identity_pem_files("/etc/gateway/no-such.pem", "/etc/gateway/no-such.key")
    ///     .build();
    /// assert!(matches!(
    ///     built,
    ///     Err(BuildError::Tls(TlsError::ReadFile { input: PemInput::ClientCertificate, .. }))
    /// ));
    /// ```
    #[cfg(feature = "tls")]
    pub fn client_identity_pem_files(
        mut self,
        cert_path: impl AsRef<std::path::Path>,
        key_path: impl AsRef<std::path::Path>,
    ) -> Self {
        self.tls.identity = Some((tls::Pem::file(cert_path), tls::Pem::file(key_path)));
        self
    }

    /// The connector for the URL's scheme: TLS with these settings for `https://`.
    #[cfg(feature = "tls")]
    fn connector(&self, mut http: HttpConnector, scheme: &Scheme) -> Result<Connector, BuildError> {
        if *scheme != Scheme::HTTPS {
            if self.tls.is_set() {
                return Err(BuildError::TlsSettingsWithoutHttps);
            }
            return Ok(tls::connector(http, self.connect_timeout, None)?);
        }
        // The TLS connector hands the TCP connector `https://` URIs.
        http.enforce_http(false);
        let alpn = match self.versions {
            Versions::Auto => tls::Alpn::Both,
            Versions::Http1 => tls::Alpn::Http1,
            Versions::Http2 => tls::Alpn::H2,
        };
        let config = self.tls.client_config()?;
        Ok(tls::connector(
            http,
            self.connect_timeout,
            Some((config, alpn)),
        )?)
    }

    #[cfg(not(feature = "tls"))]
    fn connector(&self, http: HttpConnector, _scheme: &Scheme) -> Result<Connector, BuildError> {
        Ok(http)
    }

    /// Checks the base URL, path and TLS settings, reads the PEM files given, and builds the
    /// upstream. Needs no runtime.
    pub fn build(self) -> Result<ElectricUpstream, BuildError> {
        self.build_on(TokioExecutor::new())
    }

    /// As [`build`](Self::build), with the pooled client's connection tasks spawned by
    /// `executor` (a test's stand-in can stall one of them).
    pub(super) fn build_on<E>(self, executor: E) -> Result<ElectricUpstream, BuildError>
    where
        E: hyper::rt::Executor<Pin<Box<dyn Future<Output = ()> + Send>>>
            + Send
            + Sync
            + Clone
            + 'static,
    {
        let target = Target::parse(&self.base_url, &self.path)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        // SSE frames are small: do not hold them back waiting for more.
        http.set_nodelay(true);
        let connector = self.connector(http, &target.scheme)?;
        let transport = if target.scheme == Scheme::HTTP && self.versions != Versions::Http2 {
            Transport::Http1(Arc::new(Http1Client::new(
                &target.authority,
                self.connect_timeout,
            )))
        } else {
            Transport::Pooled(
                Client::builder(executor)
                    .pool_timer(TokioTimer::new())
                    .timer(TokioTimer::new())
                    .http2_only(self.versions == Versions::Http2)
                    .build(connector),
            )
        };
        Ok(ElectricUpstream {
            inner: Arc::new(Inner {
                transport,
                scheme: target.scheme,
                host: target.host,
                authority: target.authority,
                path: target.path,
                // Over TLS with ALPN, an HTTP/1.1 request goes out as h2 on an h2 connection.
                version: if self.versions == Versions::Http2 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                },
                forwarding: self.forwarding,
                idle_timeout: self.idle_timeout,
            }),
        })
    }
}

/// Why a base URL, path or TLS setting was refused. Messages never repeat the URL: it may hold
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The base URL is not an absolute URL with a host.
    #[error("the upstream base URL is not an absolute URL with a host")]
    InvalidBaseUrl,
    /// The base URL's scheme is not `http` (or `https`, with the `tls` feature).
    #[cfg_attr(
        feature = "tls",
        error("the upstream base URL must be http:// or https://")
    )]
    #[cfg_attr(
        not(feature = "tls"),
        error("the upstream base URL must be http:// (https:// needs the `tls` feature)")
    )]
    UnsupportedScheme,
    /// TLS settings (roots, a CA, a client certificate) were given for an `http://` URL: they
    /// would silently do nothing, and whoever set them expects TLS.
    #[cfg(feature = "tls")]
    #[error("TLS settings were given for an http:// upstream; use an https:// URL")]
    TlsSettingsWithoutHttps,
    /// The TLS settings could not be used.
    #[cfg(feature = "tls")]
    #[error("upstream TLS settings: {0}")]
    Tls(#[from] TlsError),
    /// The base URL carries credentials, a query or a fragment.
    #[error("the upstream base URL must not carry credentials, a query or a fragment")]
    BaseUrlExtras,
    /// The path is not an absolute URL path without a query.
    #[error("the upstream path must start with '/' and have no query or fragment")]
    InvalidPath,
}

/// The checked parts of the upstream URL.
struct Target {
    scheme: Scheme,
    authority: Authority,
    path: PathAndQuery,
    host: HeaderValue,
}

impl Target {
    fn parse(base_url: &str, path: &str) -> Result<Self, BuildError> {
        let base = Uri::try_from(base_url).map_err(|_| BuildError::InvalidBaseUrl)?;
        let authority = base.authority().ok_or(BuildError::InvalidBaseUrl)?.clone();
        let scheme = match base.scheme() {
            None => return Err(BuildError::InvalidBaseUrl),
            Some(scheme) if *scheme == Scheme::HTTP => Scheme::HTTP,
            #[cfg(feature = "tls")]
            Some(scheme) if *scheme == Scheme::HTTPS => Scheme::HTTPS,
            Some(_) => return Err(BuildError::UnsupportedScheme),
        };
        if authority.as_str().contains('@') || base.query().is_some() || base_url.contains('#') {
            return Err(BuildError::BaseUrlExtras);
        }
        if !path.starts_with('/') || path.contains(['?', '#']) {
            return Err(BuildError::InvalidPath);
        }
        let joined = format!("{}{path}", base.path().trim_end_matches('/'));
        let path = PathAndQuery::try_from(joined).map_err(|_| BuildError::InvalidPath)?;
        let host =
            HeaderValue::from_str(authority.as_str()).map_err(|_| BuildError::InvalidBaseUrl)?;
        Ok(Self {
            scheme,
            authority,
            path,
            host,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(base: &str, path: &str) -> Result<(String, String, String), BuildError> {
        Target::parse(base, path).map(|target| {
            (
                target.authority.to_string(),
                target.path.to_string(),
                target.host.to_str().unwrap().to_owned(),
            )
        })
    }

    #[test]
    fn base_url_and_path_join_into_one_fixed_target() {
        let expect = |authority: &str, path: &str, host: &str| {
            Ok((authority.to_owned(), path.to_owned(), host.to_owned()))
        };
        assert_eq!(
            target("http://electric:3000", SHAPE_PATH),
            expect("electric:3000", "/v1/shape", "electric:3000")
        );
        assert_eq!(
            target("http://electric:3000/", SHAPE_PATH),
            expect("electric:3000", "/v1/shape", "electric:3000")
        );
        assert_eq!(
            target("http://10.0.0.5/sync/", "/v1/shape"),
            expect("10.0.0.5", "/sync/v1/shape", "10.0.0.5")
        );
        assert_eq!(
            target("http://[::1]:3000", "/custom"),
            expect("[::1]:3000", "/custom", "[::1]:3000")
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn https_base_urls_keep_their_scheme() {
        let target = Target::parse("https://electric.example/", SHAPE_PATH).unwrap();
        assert_eq!(target.scheme, Scheme::HTTPS);
        assert_eq!(target.authority, "electric.example");
        assert_eq!(target.host, "electric.example");
        let target = Target::parse("http://electric:3000", SHAPE_PATH).unwrap();
        assert_eq!(target.scheme, Scheme::HTTP);
    }

    #[test]
    fn debug_redacts_credentials_and_queries_of_the_base_url() {
        let shown = format!(
            "{:?}",
            ElectricUpstream::builder("http://u:hunter2@e/?secret=s")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("secret=s"), "{shown}");
        assert!(!shown.contains("u:"), "{shown}");
        assert!(
            shown.contains(r#"base_url: "http://[redacted]@e/?[redacted]""#),
            "{shown}"
        );
        let shown = format!(
            "{:?}",
            ElectricUpstream::builder("http://electric:3000/sync#secret=s").path("/v1?x=y")
        );
        assert!(
            !shown.contains("secret=s") && !shown.contains("x=y"),
            "{shown}"
        );
        assert!(
            shown.contains(r#"base_url: "http://electric:3000/sync?[redacted]""#),
            "{shown}"
        );
        assert!(shown.contains(r#"path: "/v1[redacted]""#), "{shown}");
        // Nothing to hide: the URL as given.
        let shown = format!("{:?}", ElectricUpstream::builder("http://electric:3000"));
        assert!(
            shown.contains(r#"base_url: "http://electric:3000/""#),
            "{shown}"
        );
        assert!(shown.contains(r#"path: "/v1/shape""#), "{shown}");
        // Not a URL: nothing of it.
        let shown = format!("{:?}", ElectricUpstream::builder("hunter2 not a url"));
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn versions_follow_the_last_call() {
        let versions = |builder: Builder| builder.versions;
        let builder = || ElectricUpstream::builder("http://electric");
        assert_eq!(versions(builder()), Versions::Auto);
        assert_eq!(versions(builder().http2_only(true)), Versions::Http2);
        assert_eq!(versions(builder().http1_only(true)), Versions::Http1);
        assert_eq!(
            versions(builder().http1_only(true).http2_only(true)),
            Versions::Http2
        );
        assert_eq!(
            versions(builder().http2_only(true).http1_only(true)),
            Versions::Http1
        );
        // Turning one off leaves the other as it was.
        assert_eq!(
            versions(builder().http1_only(true).http2_only(false)),
            Versions::Http1
        );
        assert_eq!(
            versions(builder().http2_only(true).http2_only(false)),
            Versions::Auto
        );
    }

    #[test]
    fn bad_base_urls_and_paths_are_refused() {
        assert_eq!(
            target("electric:3000", SHAPE_PATH),
            Err(BuildError::InvalidBaseUrl)
        );
        assert_eq!(target("/v1", SHAPE_PATH), Err(BuildError::InvalidBaseUrl));
        assert_eq!(
            target("not a url", SHAPE_PATH),
            Err(BuildError::InvalidBaseUrl)
        );
        #[cfg(not(feature = "tls"))]
        assert_eq!(
            target("https://electric", SHAPE_PATH),
            Err(BuildError::UnsupportedScheme)
        );
        assert_eq!(
            target("ftp://electric", SHAPE_PATH),
            Err(BuildError::UnsupportedScheme)
        );
        for extras in [
            "http://user:pw@electric:3000",
            "http://electric:3000/?secret=x",
            "http://electric:3000/#frag",
        ] {
            assert_eq!(
                target(extras, SHAPE_PATH),
                Err(BuildError::BaseUrlExtras),
                "{extras}"
            );
        }
        for path in [
            "v1/shape",
            "",
            "/v1/shape?table=x",
            "/v1/shape#x",
            "/v1 shape",
        ] {
            assert_eq!(
                target("http://electric", path),
                Err(BuildError::InvalidPath),
                "{path}"
            );
        }
    }

    #[test]
    fn build_error_messages_do_not_repeat_the_url() {
        let error = ElectricUpstream::new("http://user:hunter2@electric").unwrap_err();
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
}
