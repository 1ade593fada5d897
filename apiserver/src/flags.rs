//! kube-apiserver's command line: [`ServerRunOptions`] (the name of kube-apiserver's
//! own options struct) is what `kube-apiserver --etcd-servers=... --secure-port=6443`
//! sets, and [`ServerRunOptions::config`] turns it into the server's [`Config`].
//!
//! The `kube-apiserver` binary parses its arguments with it, and the simulator parses
//! the command line of the kube-apiserver static pod with it: the same flags, the same
//! defaults, the same errors, wherever the server runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

pub use seams::duration::parse_duration;

use crate::server::{parse_token_file, Config};

/// The Kubernetes API server, in miniature.
#[derive(Parser, Debug, Clone, PartialEq)]
#[command(
    name = "kube-apiserver",
    about = "The Kubernetes API server, in miniature"
)]
pub struct ServerRunOptions {
    /// etcd members to use, comma-separated client URLs.
    #[arg(long, value_delimiter = ',', required = true)]
    pub etcd_servers: Vec<String>,
    /// How long one etcd call may take, failing over between the members included (a
    /// Go duration). Not one of kube-apiserver's flags: there a call to etcd is bounded
    /// by its request's deadline (`--request-timeout`, 1m0s).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub etcd_request_timeout: Duration,
    /// The address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind_address: String,
    /// The port to serve the API on (HTTPS with --tls-cert-file, else plain HTTP).
    #[arg(long, default_value_t = 6443)]
    pub secure_port: u16,
    /// The serving certificate (PEM), signed by the cluster CA.
    #[arg(long)]
    pub tls_cert_file: Option<PathBuf>,
    /// The serving certificate's private key (PEM).
    #[arg(long)]
    pub tls_private_key_file: Option<PathBuf>,
    /// The address clients are told to use (defaults to the bind address).
    #[arg(long, default_value = "")]
    pub advertise_address: String,
    /// CSV file of bearer tokens: `token,user,uid[,groups]`.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// Reads served at once; past it, `429` (0: no limit).
    #[arg(long, default_value_t = 400)]
    pub max_requests_inflight: usize,
    /// Writes served at once; past it, `429` (0: no limit).
    #[arg(long, default_value_t = 200)]
    pub max_mutating_requests_inflight: usize,
    /// The audit policy (audit.k8s.io/v1 Policy, YAML): which requests are logged.
    /// Matched on verbs, users, userGroups, namespaces and resources; every logged
    /// request is written at Metadata level (no bodies), nonResourceURLs are not audited.
    #[arg(long)]
    pub audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one JSON line each (needs --audit-policy-file).
    #[arg(long)]
    pub audit_log_path: Option<PathBuf>,
    /// Rotate the audit log past this many megabytes (0: never).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxsize: u64,
    /// How many rotated audit logs to keep (0: all).
    #[arg(long, default_value_t = 0)]
    pub audit_log_maxbackup: usize,
}

impl ServerRunOptions {
    /// `--bind-address:--secure-port`.
    pub fn listen_address(&self) -> String {
        format!("{}:{}", self.bind_address, self.secure_port)
    }

    /// The server these flags describe, reading the files they name with `read` (the
    /// machine's files for the binary, a node's for the simulator), or what is wrong.
    pub fn config(
        &self,
        read: impl Fn(&Path) -> std::io::Result<String>,
    ) -> Result<Config, String> {
        let mut config = Config::new(self.etcd_servers.clone());
        config.etcd_timeout = self.etcd_request_timeout;
        config.limits.max_requests_inflight = self.max_requests_inflight;
        config.limits.max_mutating_requests_inflight = self.max_mutating_requests_inflight;
        // As kube-apiserver: no policy, no audit log (a path alone logs nothing).
        if let (Some(policy), Some(path)) = (&self.audit_policy_file, &self.audit_log_path) {
            let text = read(policy)
                .map_err(|e| format!("reading --audit-policy-file {}: {e}", policy.display()))?;
            let policy = crate::audit::Policy::parse(&text)
                .map_err(|e| format!("--audit-policy-file {}: {e}", policy.display()))?;
            config.audit = Some(crate::audit::AuditConfig {
                policy,
                path: path.clone(),
                max_bytes: self.audit_log_maxsize.saturating_mul(1024 * 1024),
                max_backups: self.audit_log_maxbackup,
            });
        }
        if let Some(path) = &self.token_auth_file {
            let text = read(path)
                .map_err(|e| format!("reading --token-auth-file {}: {e}", path.display()))?;
            config.tokens = parse_token_file(&text)
                .map_err(|e| format!("--token-auth-file {}: {e}", path.display()))?;
        }
        match (&self.tls_cert_file, &self.tls_private_key_file) {
            (Some(cert), Some(key)) => {
                let pem = |p: &Path| read(p).map_err(|e| format!("reading {}: {e}", p.display()));
                config.tls = Some((pem(cert)?, pem(key)?));
            }
            (None, None) => {}
            _ => return Err("--tls-cert-file and --tls-private-key-file go together".into()),
        }
        if !self.advertise_address.is_empty() {
            config.advertise = format!("{}:{}", self.advertise_address, self.secure_port);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_make_a_config_or_say_what_is_wrong() {
        let options = ServerRunOptions::try_parse_from([
            "kube-apiserver",
            "--etcd-servers=http://10.0.0.11:2379,http://10.0.0.12:2379",
            "--advertise-address=10.0.0.11",
            "--token-auth-file=/etc/kubernetes/tokens.csv",
            "--etcd-request-timeout=2s",
        ])
        .unwrap();
        let files = |p: &Path| match p.to_str() {
            Some("/etc/kubernetes/tokens.csv") => Ok("t0k3n,admin,admin\n".to_string()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        };
        let config = options.config(files).unwrap();
        assert_eq!(config.etcd_servers.len(), 2);
        assert_eq!(config.etcd_timeout, Duration::from_secs(2));
        assert_eq!(config.advertise, "10.0.0.11:6443");
        assert_eq!(config.tokens["t0k3n"], "admin");
        assert_eq!(options.listen_address(), "0.0.0.0:6443");

        let half_tls = ServerRunOptions::try_parse_from([
            "kube-apiserver",
            "--etcd-servers=http://e:2379",
            "--tls-cert-file=/a.crt",
        ])
        .unwrap();
        assert!(half_tls
            .config(files)
            .err()
            .unwrap()
            .contains("go together"));
        let missing = ServerRunOptions::try_parse_from([
            "kube-apiserver",
            "--etcd-servers=http://e:2379",
            "--token-auth-file=/nope.csv",
        ])
        .unwrap();
        assert!(missing
            .config(files)
            .err()
            .unwrap()
            .starts_with("reading --token-auth-file /nope.csv"));
        assert!(ServerRunOptions::try_parse_from(["kube-apiserver"]).is_err());
    }
}
