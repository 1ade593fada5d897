//! The client side of TLS: trust the cluster CA from the kubeconfig, and nothing else.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::error::{Error, Result};

fn tls(e: impl std::fmt::Display) -> Error {
    Error::Config(format!("certificates: {e}"))
}

/// A rustls client configuration that trusts only the cluster CA (`ca_pem`, the
/// kubeconfig's `certificate-authority-data`; empty trusts nothing).
pub fn client_config(ca_pem: &str) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(tls)?).map_err(tls)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_ca_that_is_not_pem_is_refused() {
        let e = super::client_config(
            "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
        );
        assert!(e.is_err());
        assert!(super::client_config("").is_ok());
    }
}
