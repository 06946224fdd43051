//! TLS to Electric (feature `tls`): the rustls client configuration an `https://` upstream
//! connects with, and how a TLS failure is told apart from other upstream trouble.
//!
//! Verification is always on: there is no way to accept a certificate that does not chain to
//! a trusted root or does not name the URL's host. The crypto provider is ring, named
//! explicitly rather than taken from the process default, so an application that also links
//! another provider neither changes this client's nor makes building it fail.

mod watch;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use zeroize::Zeroizing;

pub(super) use self::watch::{
    answered, tls_failure, watched, ConnectionLost, Handoff, SeenTls, TlsFailure, Watch,
};

/// Where an `https://` upstream's trusted root certificates come from.
///
/// CAs given with [`Builder::ca_pem`](super::Builder::ca_pem) or
/// [`Builder::ca_pem_file`](super::Builder::ca_pem_file) are trusted in addition to these.
///
/// ```
/// use tower_electric::upstream::TlsRoots;
/// use tower_electric::ElectricUpstream;
///
/// # fn main() -> Result<(), tower_electric::upstream::BuildError> {
/// // Electric Cloud, or Electric behind a load balancer with a public certificate.
/// let _cloud = ElectricUpstream::new("https://api.electric-sql.cloud")?;
///
/// // The machine's own trust store (for example a corporate CA installed there).
/// let _system = ElectricUpstream::builder("https://electric.internal")
///     .tls_roots(TlsRoots::System)
///     .build()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TlsRoots {
    /// Mozilla's root certificates, compiled in (the `webpki-roots` crate). The default: the
    /// same on every machine, whatever its trust store holds.
    #[default]
    WebPki,
    /// The operating system's trust store, read once when the upstream is built.
    System,
    /// No roots but the CAs given to the builder: a self-hosted Electric whose certificate only
    /// a private CA issues, and that no public CA should be able to impersonate.
    CustomOnly,
}

/// Which PEM input a [`TlsError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PemInput {
    /// A CA certificate to trust.
    Ca,
    /// The client certificate chain (mTLS).
    ClientCertificate,
    /// The client private key (mTLS).
    ClientKey,
}

impl fmt::Display for PemInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ca => "CA certificate PEM",
            Self::ClientCertificate => "client certificate PEM",
            Self::ClientKey => "client key PEM",
        })
    }
}

/// Why the TLS settings of an upstream were refused.
///
/// Messages name a file's path and what was wrong with it, never its content: a key file's
/// bytes stay out of errors and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read the {input} file {}: {kind}", path.display())]
    ReadFile {
        /// Which input.
        input: PemInput,
        /// The file.
        path: PathBuf,
        /// Why (not found, permission denied, ...).
        kind: io::ErrorKind,
    },
    /// A PEM input is malformed.
    #[error("the {input} is not valid PEM")]
    InvalidPem {
        /// Which input.
        input: PemInput,
    },
    /// A certificate PEM input holds no certificate.
    #[error("the {input} holds no certificate")]
    NoCertificate {
        /// Which input.
        input: PemInput,
    },
    /// A CA certificate could not be parsed as a trust anchor.
    #[error("a CA certificate cannot be used as a trust anchor")]
    InvalidCaCertificate,
    /// The client key PEM holds no private key.
    #[error("the client key PEM holds no private key")]
    NoPrivateKey,
    /// The client certificate and key cannot be used together: the key does not match the
    /// certificate, or is of a type the crypto provider does not support.
    #[error("the client certificate and key do not form a usable identity")]
    InvalidClientIdentity,
    /// There are no roots to verify Electric's certificate with: [`TlsRoots::CustomOnly`]
    /// without a CA, or a system trust store with no usable certificate.
    #[error("no root certificates to verify the upstream with")]
    NoRoots,
    /// The TLS client could not be configured with the ring provider's protocol versions.
    #[error("the TLS client could not be configured")]
    Config,
}

/// PEM bytes given directly or as a file to read when building.
#[derive(Clone)]
pub(crate) enum Pem {
    Bytes(Zeroizing<Vec<u8>>),
    File(PathBuf),
}

impl Pem {
    pub(crate) fn bytes(bytes: impl Into<Vec<u8>>) -> Self {
        Self::Bytes(Zeroizing::new(bytes.into()))
    }

    pub(crate) fn file(path: impl AsRef<Path>) -> Self {
        Self::File(path.as_ref().to_owned())
    }

    fn load(&self, input: PemInput) -> Result<Zeroizing<Vec<u8>>, TlsError> {
        match self {
            Self::Bytes(bytes) => Ok(bytes.clone()),
            Self::File(path) => {
                std::fs::read(path)
                    .map(Zeroizing::new)
                    .map_err(|error| TlsError::ReadFile {
                        input,
                        path: path.clone(),
                        kind: error.kind(),
                    })
            }
        }
    }

    fn describe(&self, f: &mut fmt::Formatter<'_>, secret: bool) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Bytes(_) if secret => f.write_str("[redacted]"),
            Self::Bytes(bytes) => write!(f, "{} bytes of PEM", bytes.len()),
        }
    }
}

/// The TLS settings of the upstream's builder (and of `jwt::Jwks`, which sets no client
/// identity). `Debug` names files, never a key's bytes.
#[derive(Clone, Default)]
pub(crate) struct TlsSettings {
    /// `None` until set: the default is [`TlsRoots::WebPki`].
    pub(crate) roots: Option<TlsRoots>,
    pub(crate) cas: Vec<Pem>,
    pub(super) identity: Option<(Pem, Pem)>,
}

impl TlsSettings {
    /// Whether anything TLS-specific was asked for.
    pub(crate) fn is_set(&self) -> bool {
        self.roots.is_some() || !self.cas.is_empty() || self.identity.is_some()
    }

    /// The rustls client configuration these settings describe, without ALPN (the connector
    /// sets it from the HTTP versions in use).
    pub(crate) fn client_config(&self) -> Result<ClientConfig, TlsError> {
        let mut roots = RootCertStore::empty();
        match self.roots.unwrap_or_default() {
            TlsRoots::WebPki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            TlsRoots::System => {
                // A store with some unreadable entries is still a store: trust what parses.
                let native = rustls_native_certs::load_native_certs();
                let (_added, _ignored) = roots.add_parsable_certificates(native.certs);
            }
            TlsRoots::CustomOnly => {}
        }
        for ca in &self.cas {
            let pem = ca.load(PemInput::Ca)?;
            for cert in certificates(&pem, PemInput::Ca)? {
                roots
                    .add(cert)
                    .map_err(|_| TlsError::InvalidCaCertificate)?;
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let builder = config_with(roots)?;
        match &self.identity {
            None => Ok(builder.with_no_client_auth()),
            Some((cert, key)) => {
                let chain = certificates(
                    &cert.load(PemInput::ClientCertificate)?,
                    PemInput::ClientCertificate,
                )?;
                let key = private_key(&key.load(PemInput::ClientKey)?)?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|_| TlsError::InvalidClientIdentity)
            }
        }
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Describe<'a>(&'a Pem, bool);
        impl fmt::Debug for Describe<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.describe(f, self.1)
            }
        }
        f.debug_struct("TlsSettings")
            .field("roots", &self.roots.unwrap_or_default())
            .field(
                "cas",
                &self
                    .cas
                    .iter()
                    .map(|ca| Describe(ca, false))
                    .collect::<Vec<_>>(),
            )
            .field(
                "client_identity",
                &self
                    .identity
                    .as_ref()
                    .map(|(cert, key)| (Describe(cert, false), Describe(key, true))),
            )
            .finish()
    }
}

/// Every certificate in `pem` (other sections are skipped); at least one.
fn certificates(pem: &[u8], input: PemInput) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::InvalidPem { input })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { input });
    }
    Ok(certs)
}

/// The first private key in `pem` (PKCS#8, PKCS#1 or SEC1).
fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|error| match error {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey,
        _ => TlsError::InvalidPem {
            input: PemInput::ClientKey,
        },
    })
}

/// The connector of every upstream when the feature is on: TLS for `https://`, plain TCP for
/// `http://` (the scheme is fixed per upstream, so one upstream only ever uses one of them),
/// every connection watched for TLS failures.
pub(super) type Connector = watch::Connector<HttpsConnector<HttpConnector>>;

/// The connector for `https://` (`tls` set) or `http://` (`None`); connecting takes at most
/// `timeout`, TLS handshake included.
pub(super) fn connector(
    http: HttpConnector,
    timeout: Duration,
    tls: Option<(ClientConfig, Alpn)>,
) -> Result<Connector, TlsError> {
    let Some((config, alpn)) = tls else {
        // Plain HTTP never makes a handshake, so this empty trust store is never asked; were
        // it asked, it would trust nothing.
        return Ok(watch::Connector::new(
            HttpsConnectorBuilder::new()
                .with_tls_config(config_with(RootCertStore::empty())?.with_no_client_auth())
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
            timeout,
        ));
    };
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(watch::noting_certificate_requests(config))
        .https_only();
    let connector = match alpn {
        Alpn::Both => builder.enable_all_versions().wrap_connector(http),
        Alpn::H2 => builder.enable_http2().wrap_connector(http),
        Alpn::Http1 => builder.enable_http1().wrap_connector(http),
    };
    Ok(watch::Connector::new(connector, timeout))
}

/// The connector of the crate's own small fetches (a JWKS URL, feature `jwt`), HTTP/1.1 only:
/// TLS with `config` (from [`TlsSettings::client_config`]) and `https://` only when given one,
/// plain TCP and `http://` only otherwise. Unlike the upstream's [`Connector`], it keeps no
/// note of TLS failures; the caller bounds the whole fetch with its own timeout.
#[cfg(feature = "jwt")]
pub(crate) fn http1_connector(
    mut http: HttpConnector,
    config: Option<ClientConfig>,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let builder = match config {
        Some(config) => {
            // The TLS connector hands the TCP connector `https://` URIs.
            http.enforce_http(false);
            HttpsConnectorBuilder::new()
                .with_tls_config(config)
                .https_only()
        }
        // As in `connector`: plain HTTP never asks this empty trust store.
        None => HttpsConnectorBuilder::new()
            .with_tls_config(config_with(RootCertStore::empty())?.with_no_client_auth())
            .https_or_http(),
    };
    Ok(builder.enable_http1().wrap_connector(http))
}

/// A client configuration with ring and its safe protocol versions, trusting `roots`.
fn config_with(
    roots: RootCertStore,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, TlsError> {
    Ok(
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|_| TlsError::Config)?
            .with_root_certificates(roots),
    )
}

/// Which HTTP versions ALPN offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Alpn {
    /// `h2` and `http/1.1`: the server chooses, per connection.
    Both,
    /// `h2` alone (`http2_only`): an HTTP/1.1-only server refuses the handshake rather than
    /// being spoken h2 to.
    H2,
    /// `http/1.1` alone (`http1_only`).
    Http1,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn web_roots_are_the_default_and_not_empty() {
        let settings = TlsSettings::default();
        assert!(!settings.is_set());
        assert!(settings.client_config().is_ok());
        let custom_only = TlsSettings {
            roots: Some(TlsRoots::CustomOnly),
            ..TlsSettings::default()
        };
        assert_eq!(custom_only.client_config().err(), Some(TlsError::NoRoots));
    }
}
