//! Kubeconfig files: where a cluster is, how to trust it, and who you are — what
//! `~/.kube/config` and `/etc/kubernetes/admin.conf` hold, and what kubectl, the
//! scheduler and the kubelets read to find the API server.

use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Kubeconfig {
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
    #[serde(default)]
    pub users: Vec<NamedUser>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: Cluster,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Cluster {
    pub server: String,
    /// The cluster CA, base64 of its PEM.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub certificate_authority_data: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_tls_verify: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: Context,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Context {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: User,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
}

/// What a client needs from the current context.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub server: String,
    /// The CA's PEM, if the kubeconfig carries one.
    pub ca_pem: Option<String>,
    pub token: Option<String>,
    pub namespace: String,
}

impl Kubeconfig {
    /// One cluster, one user, one context named after the cluster, as kubeadm writes
    /// `admin.conf`.
    pub fn new(cluster: &str, server: &str, ca_pem: &str, user: &str, token: &str) -> Self {
        let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
        let context = format!("{user}@{cluster}");
        Kubeconfig {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: cluster.into(),
                cluster: Cluster {
                    server: server.into(),
                    certificate_authority_data: ca,
                    insecure_skip_tls_verify: false,
                },
            }],
            contexts: vec![NamedContext {
                name: context.clone(),
                context: Context {
                    cluster: cluster.into(),
                    user: user.into(),
                    namespace: String::new(),
                },
            }],
            current_context: context,
            users: vec![NamedUser {
                name: user.into(),
                user: User {
                    token: token.into(),
                },
            }],
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        serde_yaml_ng::from_str(text).map_err(|e| Error::Config(format!("kubeconfig: {e}")))
    }

    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("a kubeconfig always serialises")
    }

    /// The server, CA, token and namespace of the current context.
    pub fn target(&self) -> Result<Target> {
        let missing = |what: &str| Error::Config(format!("kubeconfig: {what}"));
        let context = self
            .contexts
            .iter()
            .find(|c| c.name == self.current_context)
            .ok_or_else(|| missing("no current context"))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == context.context.cluster)
            .ok_or_else(|| missing("the context's cluster is not defined"))?;
        let user = self.users.iter().find(|u| u.name == context.context.user);
        let ca_pem = match cluster.cluster.certificate_authority_data.as_str() {
            "" => None,
            data => {
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| missing(&format!("certificate-authority-data: {e}")))?;
                Some(String::from_utf8_lossy(&pem).into_owned())
            }
        };
        Ok(Target {
            server: cluster.cluster.server.clone(),
            ca_pem,
            token: user.map(|u| u.user.token.clone()).filter(|t| !t.is_empty()),
            namespace: match context.context.namespace.as_str() {
                "" => "default".into(),
                ns => ns.into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_round_trips_through_yaml() {
        let k = Kubeconfig::new(
            "kubernetes",
            "https://10.0.0.11:6443",
            "PEM",
            "kubernetes-admin",
            "t0k",
        );
        let yaml = k.to_yaml();
        assert!(yaml.contains("server: https://10.0.0.11:6443"), "{yaml}");
        assert!(
            yaml.contains("current-context: kubernetes-admin@kubernetes"),
            "{yaml}"
        );
        let back = Kubeconfig::parse(&yaml).unwrap();
        assert_eq!(back, k);
        let t = back.target().unwrap();
        assert_eq!(t.ca_pem.as_deref(), Some("PEM"));
        assert_eq!(t.token.as_deref(), Some("t0k"));
        assert_eq!(t.namespace, "default");
        assert!(Kubeconfig::parse("clusters: 3").is_err());
    }
}
