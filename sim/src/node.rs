//! What every component on a node shares: its name and address, its directory in the
//! data root (its "disk"), the simulated network, the clock, and the cluster's timings.
//!
//! A node's files are a directory of the host (`<data root>/node1`), and every path a
//! command names is turned into a host path here, in one place: [`NodeContext::path`]
//! reads it the way a chroot would (`..` stops at the node's `/`), and
//! [`NodeContext::resolve`] also follows the symbolic links that exist and refuses a
//! path that really leads outside the node. Without that, `rm /../../x` typed on a node
//! would delete a file of the host.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use seams::Clock;

use crate::error::{Error, Result};

/// The kubelet's timings, Kubernetes' defaults. The components' own timings are their
/// binaries' defaults ([`crate::manifests`], [`crate::cluster::etcd_container`]).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How often a kubelet renews its node lease and syncs its pods: a quarter of the
    /// lease's 40 s (the kubelet's `nodeLeaseDurationSeconds`), 10 s.
    pub node_lease_renew: Duration,
    /// How often the kubelet looks at its containers again (its PLEG relists every
    /// second), so a stopped container of a pod is started again.
    pub relist: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            node_lease_renew: Duration::from_secs(10),
            relist: Duration::from_secs(1),
        }
    }
}

pub struct NodeContext {
    pub name: String,
    pub ip: String,
    /// The node's `/`.
    pub root: PathBuf,
    /// The node's view of the cluster's network (its dials come from its address).
    pub network: seams::net::SharedNetwork,
    pub clock: Arc<dyn Clock>,
    /// The node's share of the cluster's random numbers (IDs, tokens, identities).
    pub rng: seams::Rng,
    pub timing: Timing,
}

/// Where a node's shell starts, and what a relative path is relative to: root's home,
/// as after `ssh root@node1`.
pub const CWD: &str = "/root";

/// Whether [`NodeContext::resolve`] follows the path's last component if it is a
/// symbolic link. `rm` does not (it removes the link); everything else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Follow every link, the last one too (reading or writing a file).
    All,
    /// Follow the links of the directories on the way, not the last component.
    NotLast,
}

/// A path refused because it leads outside the node (its display is the reason a
/// command prints after `Permission denied`).
#[derive(Debug, thiserror::Error)]
#[error("it leads outside {node}")]
pub struct OutsideNode {
    /// The node's name.
    pub node: String,
}

/// How many symbolic links one path may go through, as Linux's limit (ELOOP).
const MAX_LINKS: u32 = 40;

impl NodeContext {
    /// What the node's components are built on: its network, its clock, its random
    /// numbers.
    pub fn host(&self) -> seams::Host {
        seams::Host {
            network: self.network.clone(),
            clock: self.clock.clone(),
            rng: self.rng.clone(),
        }
    }

    /// A path on this node as a host path, read lexically the way a chroot reads it: a
    /// relative path starts at [`CWD`], `.` is dropped, and `..` goes up but never
    /// above the node's `/` (`/../../x` is `/x`). `/etc/kubernetes/manifests` →
    /// `<root>/etc/kubernetes/manifests`. Symbolic links are not looked at: what a
    /// command typed on the node opens goes through [`NodeContext::resolve`].
    pub fn path(&self, path: &str) -> PathBuf {
        let mut host = self.root.clone();
        for name in node_components(path) {
            host.push(name);
        }
        host
    }

    /// [`NodeContext::path`], then where the path really is once the symbolic links
    /// that exist are followed (as the kernel will, when the command opens it): if that
    /// is outside the node's root, the path is refused with `PermissionDenied` (its
    /// inner error an [`OutsideNode`]). Parts that do not exist yet are fine (a file
    /// about to be written), and so is a dangling link whose target would be on the
    /// node. Returns the real host path, to be used for the operation.
    pub fn resolve(&self, path: &str, follow: Follow) -> io::Result<PathBuf> {
        let root = std::fs::canonicalize(&self.root)?;
        let host = self.path(path);
        let real = match (follow, host.parent(), host.file_name()) {
            (Follow::NotLast, Some(parent), Some(name)) => real_path(parent, 0)?.join(name),
            _ => real_path(&host, 0)?,
        };
        if real.starts_with(&root) {
            Ok(real)
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                OutsideNode {
                    node: self.name.clone(),
                },
            ))
        }
    }

    /// Reads a file on this node.
    pub fn read(&self, path: &str) -> Result<String> {
        self.resolve(path, Follow::All)
            .and_then(std::fs::read_to_string)
            .map_err(|e| Error::Io(format!("{path}: {}", reason(&e))))
    }

    /// Writes a file on this node, creating its directory.
    pub fn write(&self, path: &str, text: &str) -> Result<()> {
        let full = self
            .resolve(path, Follow::All)
            .map_err(|e| Error::Io(format!("{path}: {}", reason(&e))))?;
        if let Some(dir) = full.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(full, text)?;
        Ok(())
    }
}

/// The names of a node path after reading `.` and `..` against [`CWD`] and the node's
/// `/`: `../../etc//hosts` → `["etc", "hosts"]`.
fn node_components(path: &str) -> Vec<&str> {
    let start = if path.starts_with('/') { "" } else { CWD };
    let mut names: Vec<&str> = Vec::new();
    for name in start.split('/').chain(path.split('/')) {
        match name {
            "" | "." => {}
            ".." => {
                names.pop(); // at the node's `/`, `..` is `/` itself
            }
            name => names.push(name),
        }
    }
    names
}

/// Where host path `path` really is: for the part that exists, every symbolic link
/// followed (`canonicalize`); a dangling link, by where it points; the names after
/// the last existing directory, appended as they are (nothing there can be a link).
fn real_path(path: &Path, links: u32) -> io::Result<PathBuf> {
    if links > MAX_LINKS {
        return Err(io::Error::other("Too many levels of symbolic links"));
    }
    if let Ok(real) = std::fs::canonicalize(path) {
        return Ok(real);
    }
    // Not all of it exists. A link whose target does not exist: follow it anyway, as
    // opening it for writing would (a relative target is relative to the link's
    // directory; `join` keeps an absolute one as it is).
    if let Ok(target) = std::fs::read_link(path) {
        let dir = path.parent().unwrap_or(Path::new("/"));
        return real_path(&dir.join(target), links + 1);
    }
    match (path.parent(), path.components().next_back()) {
        (Some(parent), Some(Component::Normal(name))) => Ok(real_path(parent, links)?.join(name)),
        // `x/..` where `x` does not exist: the kernel would fail on `x`; read the
        // name lexically, which stays on the safe side of the check.
        (Some(parent), Some(Component::ParentDir)) => {
            let mut real = real_path(parent, links)?;
            real.pop();
            Ok(real)
        }
        (Some(parent), Some(Component::CurDir)) => real_path(parent, links),
        _ => Ok(path.to_path_buf()),
    }
}

/// What a command prints for a failed file operation, after the path: the words of
/// the C library's `strerror`, as `rm`, `cat` and `ls` print them.
pub fn reason(e: &io::Error) -> String {
    if let Some(outside) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<OutsideNode>())
    {
        return format!("Permission denied ({outside})");
    }
    match e.kind() {
        io::ErrorKind::NotFound => "No such file or directory".into(),
        io::ErrorKind::PermissionDenied => "Permission denied".into(),
        io::ErrorKind::IsADirectory => "Is a directory".into(),
        io::ErrorKind::NotADirectory => "Not a directory".into(),
        io::ErrorKind::DirectoryNotEmpty => "Directory not empty".into(),
        io::ErrorKind::AlreadyExists => "File exists".into(),
        _ if e.raw_os_error().is_none() => e.to_string(),
        _ => "Input/output error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_dot_stops_at_the_nodes_root() {
        assert_eq!(node_components("/../../x"), ["x"]);
        assert_eq!(node_components("../../../x"), ["x"]);
        assert_eq!(node_components("../../etc//hosts"), ["etc", "hosts"]);
        assert_eq!(
            node_components(".kube/./config"),
            ["root", ".kube", "config"]
        );
        assert_eq!(node_components("/etc/kubernetes/../pki"), ["etc", "pki"]);
        assert_eq!(node_components("/"), Vec::<&str>::new());
    }
}
