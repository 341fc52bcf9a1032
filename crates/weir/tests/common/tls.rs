//! Certificates made in the tests (rcgen).

use std::path::{Path, PathBuf};

/// A self-signed certificate for localhost / 127.0.0.1 written to `dir`: (cert, key) paths.
pub fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let rcgen::CertifiedKey { cert, key_pair } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    write_pair(dir, name, &cert, &key_pair)
}

/// Writes `cert` and `key` to `dir` as `{name}.pem` and `{name}.key`: their paths.
fn write_pair(
    dir: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &rcgen::KeyPair,
) -> (PathBuf, PathBuf) {
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// PEM files of a private certificate authority and two certificates it signed.
pub struct PrivateCa {
    /// The authority's certificate.
    pub ca: PathBuf,
    /// A server certificate for localhost / 127.0.0.1, and its key.
    pub server: (PathBuf, PathBuf),
    /// A client certificate, and its key.
    pub client: (PathBuf, PathBuf),
}

/// A private CA and a server and a client certificate signed by it, written to `dir`.
pub fn private_ca(dir: &Path) -> PrivateCa {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "weir test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let issue = |name: &str, sans: Vec<String>, purpose: ExtendedKeyUsagePurpose| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![purpose];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        write_pair(dir, name, &cert, &key)
    };
    let server = issue(
        "server",
        vec!["localhost".to_owned(), "127.0.0.1".to_owned()],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = issue("client", Vec::new(), ExtendedKeyUsagePurpose::ClientAuth);
    PrivateCa {
        ca: ca_path,
        server,
        client,
    }
}
