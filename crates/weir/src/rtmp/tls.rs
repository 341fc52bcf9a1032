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
//! The HTTP listener serves HTTPS with the same certificates when `http.tls` is on.
//!
//! Not yet: several certificates chosen by SNI.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

use super::{tune_socket, Transport};
use crate::config::Config;
use crate::registry::Protocol;

/// The loaded certificate and what it was loaded from.
struct Loaded {
    acceptor: TlsAcceptor,
    stamps: (Option<SystemTime>, Option<SystemTime>),
}

/// The certificate files and the acceptor made from them.
pub(crate) struct Certificates {
    cert_file: PathBuf,
    key_file: PathBuf,
    loaded: Mutex<Loaded>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// A rustls server configuration from a PEM chain and key.
fn server_config(cert_file: &Path, key_file: &Path) -> Result<ServerConfig, String> {
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
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))
}

impl Certificates {
    /// Loads `cert_file` and `key_file`; an error says which file is wrong and how.
    pub(crate) fn load(cert_file: &Path, key_file: &Path) -> Result<Certificates, String> {
        let config = server_config(cert_file, key_file)?;
        Ok(Certificates {
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            loaded: Mutex::new(Loaded {
                acceptor: TlsAcceptor::from(Arc::new(config)),
                stamps: (modified(cert_file), modified(key_file)),
            }),
        })
    }

    /// The acceptor for the next handshake, reloaded first if a file changed.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let stamps = (modified(&self.cert_file), modified(&self.key_file));
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if stamps != loaded.stamps {
            loaded.stamps = stamps;
            match server_config(&self.cert_file, &self.key_file) {
                Ok(config) => {
                    loaded.acceptor = TlsAcceptor::from(Arc::new(config));
                    info!(cert = %self.cert_file.display(), "rtmps certificate reloaded");
                }
                Err(err) => warn!(
                    cert = %self.cert_file.display(),
                    "rtmps certificate changed but cannot be used ({err}); keeping the previous one"
                ),
            }
        }
        loaded.acceptor.clone()
    }
}

/// RTMP over TLS.
pub(crate) struct TlsTransport {
    listener: TcpListener,
    config: Arc<Config>,
    certificates: Arc<Certificates>,
}

impl TlsTransport {
    pub(crate) fn new(
        listener: TcpListener,
        config: &Config,
        certificates: Arc<Certificates>,
    ) -> TlsTransport {
        TlsTransport {
            listener,
            config: Arc::new(config.clone()),
            certificates,
        }
    }
}

impl Transport for TlsTransport {
    type Incoming = TcpStream;
    type Io = TlsStream<TcpStream>;

    async fn accept(&mut self) -> io::Result<(TcpStream, SocketAddr)> {
        self.listener.accept().await
    }

    fn establish(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> Pin<Box<dyn Future<Output = io::Result<Self::Io>> + Send>> {
        tune_socket(&socket, &self.config, peer);
        let certificates = Arc::clone(&self.certificates);
        Box::pin(async move { certificates.acceptor().accept(socket).await })
    }

    fn protocol(&self) -> Protocol {
        Protocol::Rtmps
    }
}
