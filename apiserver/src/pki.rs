//! The cluster's certificates, made when the cluster is created, as kubeadm (or
//! kubespray) does: a CA (`/etc/kubernetes/pki/ca.crt`), and a serving certificate for
//! each apiserver signed by it (`apiserver.crt`), valid for every name and address
//! clients use to reach it. Kubeconfigs carry the CA so kubectl can check the server.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

fn pki(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("certificates: {e}"))
}

/// The cluster certificate authority.
pub struct Ca {
    /// `ca.crt`, PEM.
    pub cert_pem: String,
    /// `ca.key`, PEM.
    pub key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, "kubernetes");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

impl Ca {
    /// A new CA with a fresh key (`kubeadm init phase certs ca`).
    pub fn generate() -> Result<Ca> {
        let key = KeyPair::generate().map_err(pki)?;
        let cert = ca_params().self_signed(&key).map_err(pki)?;
        let key_pem = key.serialize_pem();
        Ok(Ca {
            cert_pem: cert.pem(),
            key_pem,
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// The CA from its files.
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Ca> {
        let key = KeyPair::from_pem(key_pem).map_err(pki)?;
        Ok(Ca {
            cert_pem: cert_pem.to_string(),
            key_pem: key_pem.to_string(),
            issuer: Issuer::new(ca_params(), key),
        })
    }

    /// A serving certificate for `hosts` (IP addresses or DNS names), signed by the CA:
    /// `(cert PEM, key PEM)`.
    pub fn issue_serving(&self, common_name: &str, hosts: &[String]) -> Result<(String, String)> {
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, common_name);
        params.distinguished_name = name;
        params.subject_alt_names = hosts
            .iter()
            .map(|h| match h.parse() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => h.clone().try_into().map(SanType::DnsName).map_err(pki),
            })
            .collect::<Result<_>>()?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().map_err(pki)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(pki)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// A rustls server configuration from PEM files' contents (HTTP/1.1 only).
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>> {
    let certs = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(pki)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pki)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(pki)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(pki)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_issues_serving_certificates_rustls_accepts() {
        let ca = Ca::generate().unwrap();
        assert!(ca.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let hosts = vec!["127.0.0.1".to_string(), "kubernetes".to_string()];
        let (cert, key) = ca.issue_serving("kube-apiserver", &hosts).unwrap();
        server_config(&cert, &key).unwrap();
        client_go::tls::client_config(&ca.cert_pem).unwrap();
        // A CA loaded from its files signs too.
        let again = Ca::load(&ca.cert_pem, &ca.key_pem).unwrap();
        again.issue_serving("x", &hosts).unwrap();
        assert!(server_config("not a cert", &key).is_err());
    }
}
