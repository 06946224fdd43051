//! A PKI made at run time with rcgen, and the Electric stand-in served over TLS with it
//! (tokio-rustls): for `tests/upstream_tls.rs`, `tests/deployments.rs`, `tests/jwt.rs` (a JWKS
//! over https) and the HTTPS demo of `examples/standin.rs` (`STANDIN_TLS_DIR`).
#![allow(dead_code)]
// each includer uses what it needs
// Test support: a failure here is a panic with its message, in a test or at a demo's start.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::{Request, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tower_electric::testing::ElectricStandIn;

// ---------------------------------------------------------------------------------------
// A PKI

/// A certificate authority made for one test (or one demo run).
pub(crate) struct Ca {
    pub(crate) pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM.
pub(crate) struct Identity {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

impl Ca {
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    pub(crate) fn issue(&self, params: CertificateParams) -> Identity {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A server certificate for `names` (host names, or IP addresses as text), valid from
    /// 1975 to 4096 (rcgen's defaults).
    pub(crate) fn server(&self, names: &[&str]) -> Identity {
        self.issue(server_params(names))
    }

    /// A client certificate.
    pub(crate) fn client(&self, name: &str) -> Identity {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(params)
    }
}

pub(crate) fn server_params(names: &[&str]) -> CertificateParams {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

fn key(pem: &str) -> PrivateKeyDer<'static> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

// ---------------------------------------------------------------------------------------
// The stand-in behind a TLS listener

/// How the server speaks TLS.
pub(crate) struct ServerTls {
    identity: Identity,
    /// The ALPN protocols it accepts, in its order of preference.
    alpn: Vec<&'static [u8]>,
    /// Client certificates it requires, issued by this CA.
    client_ca: Option<String>,
}

impl ServerTls {
    /// `identity`, with ALPN `h2` preferred over `http/1.1` and no client certificate.
    pub(crate) fn new(identity: Identity) -> Self {
        Self {
            identity,
            alpn: vec![b"h2", b"http/1.1"],
            client_ca: None,
        }
    }

    pub(crate) fn alpn(mut self, alpn: &[&'static [u8]]) -> Self {
        self.alpn = alpn.to_vec();
        self
    }

    pub(crate) fn require_client_cert(mut self, ca: &Ca) -> Self {
        self.client_ca = Some(ca.pem.clone());
        self
    }

    pub(crate) fn config(&self) -> rustls::ServerConfig {
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = match &self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certs(ca) {
                    roots.add(cert).unwrap();
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider(),
                )
                .build()
                .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder
            .with_single_cert(certs(&self.identity.cert_pem), key(&self.identity.key_pem))
            .unwrap();
        config.alpn_protocols = self.alpn.iter().map(|proto| proto.to_vec()).collect();
        config
    }
}

/// The stand-in served over TLS on `127.0.0.1`, addressed as `https://localhost:<port>`;
/// it serves until the runtime stops.
pub(crate) struct TlsStandIn {
    pub(crate) addr: SocketAddr,
    /// The HTTP version of every request the stand-in got, in order.
    versions: Arc<Mutex<Vec<Version>>>,
    /// The ALPN protocol of every completed handshake, in order (`None`: none agreed).
    negotiated: Arc<Mutex<Vec<Option<String>>>>,
    /// TCP connections accepted.
    pub(crate) connections: Arc<AtomicUsize>,
    /// TLS handshakes that completed on the server's side.
    pub(crate) handshakes: Arc<AtomicUsize>,
}

impl TlsStandIn {
    pub(crate) async fn serve(standin: &ElectricStandIn, tls: &ServerTls) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(tls.config()));
        let server = Self {
            addr,
            versions: Arc::default(),
            negotiated: Arc::default(),
            connections: Arc::default(),
            handshakes: Arc::default(),
        };
        let (versions, negotiated) = (server.versions.clone(), server.negotiated.clone());
        let (connections, handshakes) = (server.connections.clone(), server.handshakes.clone());
        let standin = standin.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                connections.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let standin = standin.clone();
                let versions = versions.clone();
                let negotiated = negotiated.clone();
                let handshakes = handshakes.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(stream).await else {
                        return;
                    };
                    let alpn = stream.get_ref().1.alpn_protocol();
                    let alpn = alpn.map(|proto| String::from_utf8_lossy(proto).into_owned());
                    negotiated.lock().unwrap().push(alpn);
                    handshakes.fetch_add(1, Ordering::SeqCst);
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        versions.lock().unwrap().push(request.version());
                        let mut standin = standin.clone();
                        standin.call(request)
                    });
                    let mut builder = auto::Builder::new(TokioExecutor::new());
                    builder.http2().max_concurrent_streams(None);
                    let _ = builder
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        server
    }

    pub(crate) fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub(crate) fn versions(&self) -> Vec<Version> {
        self.versions.lock().unwrap().clone()
    }

    /// The ALPN protocol each completed handshake agreed on, in order.
    pub(crate) fn negotiated(&self) -> Vec<Option<String>> {
        self.negotiated.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------------------
// Files

/// A directory under the system's temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "tower-electric-tls-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub(crate) fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
