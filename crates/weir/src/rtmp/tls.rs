//! RTMPS: the RTMP listener over TLS (rustls). The same connection driver runs on the
//! decrypted stream; only [`Transport::establish`] differs: the TLS handshake, inside the
//! connection's own task under `rtmp.handshake_timeout_secs`, so a client that stalls or sends
//! garbage there holds up nobody else.
//!
//! The certificate chain and key come from PEM files (`rtmps.cert_file`, `rtmps.key_file`).
//! Before each handshake the files' modification times are compared with the ones loaded;
//! when they changed (a renewed Let's Encrypt certificate), the files are read again and the
//! next connections use them, while established ones go on untouched. A renewal that cannot
//! be read keeps the previous certificate, with a log line.
//!
//! More pairs (`rtmps.certificates`) serve other names on the same port: each handshake gets
//! the first certificate valid for the name the client asked for (SNI), else the
//! `cert_file` one. Every pair is watched and reloaded the same way.
//!
//! The HTTP listener serves HTTPS with the same certificates when `http.tls` is on.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::{tune_socket, Establishing, Transport};
use crate::config::Config;
use crate::registry::Protocol;

/// One certificate chain and key, and the modification times they were loaded at.
struct Pair {
    cert_file: PathBuf,
    key_file: PathBuf,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    key: Arc<CertifiedKey>,
}

/// The certificate files and the acceptor made from them.
pub(crate) struct Certificates {
    loaded: Mutex<(Vec<Pair>, TlsAcceptor)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn provider() -> Arc<tokio_rustls::rustls::crypto::CryptoProvider> {
    Arc::new(tokio_rustls::rustls::crypto::ring::default_provider())
}

/// A certificate chain and signing key from PEM files.
fn certified_key(cert_file: &Path, key_file: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("cannot read {}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{} is not a PEM certificate chain: {e}",
                cert_file.display()
            )
        })?;
    if chain.is_empty() {
        return Err(format!("{} holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{} holds no PEM private key: {e}", key_file.display()))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{} is no usable private key: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(certified)
}

/// Picks the certificate for a handshake by its server name.
#[derive(Debug)]
struct BySni(Vec<Arc<CertifiedKey>>);

impl BySni {
    /// The first certificate valid for `name`.
    fn valid_for(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = ServerName::try_from(name).ok()?;
        self.0
            .iter()
            .find(|key| {
                key.end_entity_cert().is_ok_and(|leaf| {
                    webpki::EndEntityCert::try_from(leaf)
                        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(&name).is_ok())
                })
            })
            .cloned()
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.valid_for(name))
            .or_else(|| self.0.first().cloned())
    }
}

/// The acceptor for `pairs` (the first is the default).
fn acceptor(pairs: &[Pair]) -> Result<TlsAcceptor, String> {
    let resolver = BySni(pairs.iter().map(|p| Arc::clone(&p.key)).collect());
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

impl Certificates {
    /// Loads the `(cert_file, key_file)` pairs (the first is the default); an error says
    /// which file is wrong and how.
    pub(crate) fn load(files: &[(PathBuf, PathBuf)]) -> Result<Certificates, String> {
        let pairs = files
            .iter()
            .map(|(cert_file, key_file)| {
                Ok(Pair {
                    key: Arc::new(certified_key(cert_file, key_file)?),
                    stamps: (modified(cert_file), modified(key_file)),
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let acceptor = acceptor(&pairs)?;
        Ok(Certificates {
            loaded: Mutex::new((pairs, acceptor)),
        })
    }

    /// The files in use, the default pair first.
    pub(crate) fn files(&self) -> Vec<(PathBuf, PathBuf)> {
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded
            .0
            .iter()
            .map(|p| (p.cert_file.clone(), p.key_file.clone()))
            .collect()
    }

    /// Loads another set of pairs (a reload): used by the next handshakes; open connections
    /// go on. An error keeps the current ones.
    pub(crate) fn replace(&self, files: &[(PathBuf, PathBuf)]) -> Result<(), String> {
        let fresh = Certificates::load(files)?;
        let fresh = fresh.loaded.into_inner().unwrap_or_else(|p| p.into_inner());
        *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    /// The acceptor for the next handshake, rebuilt first if a file changed.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let (pairs, current) = &mut *loaded;
        let mut changed = false;
        for pair in pairs.iter_mut() {
            let stamps = (modified(&pair.cert_file), modified(&pair.key_file));
            if stamps == pair.stamps {
                continue;
            }
            pair.stamps = stamps;
            match certified_key(&pair.cert_file, &pair.key_file) {
                Ok(key) => {
                    pair.key = Arc::new(key);
                    changed = true;
                    info!(cert = %pair.cert_file.display(), "rtmps certificate reloaded");
                }
                Err(err) => warn!(
                    cert = %pair.cert_file.display(),
                    "rtmps certificate changed but cannot be used ({err}); keeping the previous one"
                ),
            }
        }
        if changed {
            match acceptor(pairs) {
                Ok(rebuilt) => *current = rebuilt,
                Err(err) => warn!("rtmps certificates changed but cannot be used ({err})"),
            }
        }
        current.clone()
    }
}

/// RTMP over TLS.
pub(crate) struct TlsTransport {
    listener: Arc<TcpListener>,
    config: Arc<Config>,
    certificates: Arc<Certificates>,
    proxies: Arc<crate::proxy::Proxies>,
}

impl TlsTransport {
    pub(crate) fn new(
        listener: Arc<TcpListener>,
        context: &super::Context,
        certificates: Arc<Certificates>,
    ) -> TlsTransport {
        TlsTransport {
            listener,
            config: Arc::new(context.config.clone()),
            certificates,
            proxies: Arc::clone(&context.proxies),
        }
    }
}

impl Transport for TlsTransport {
    type Incoming = TcpStream;
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }

    fn establish(&self, mut socket: TcpStream, peer: SocketAddr) -> Establishing<Self::Io> {
        tune_socket(&socket, &self.config, peer);
        let certificates = Arc::clone(&self.certificates);
        let proxied = self.proxied(peer);
        Box::pin(async move {
            // A balancer's PROXY header comes before the TLS handshake.
            let client = super::client_of(&mut socket, peer, proxied).await?;
            let tls = certificates.acceptor().accept(socket).await?;
            Ok((tls, client))
        })
    }

    fn proxied(&self, peer: SocketAddr) -> bool {
        self.proxies.rtmp_header() && self.proxies.trusts(peer.ip())
    }

    fn protocol(&self) -> Protocol {
        Protocol::Rtmps
    }
}
