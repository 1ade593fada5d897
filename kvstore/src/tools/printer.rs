//! What `etcdctl` prints, for our own command-line tools (`kvctl`, the simulator's
//! `etcdctl`): sizes as go-humanize writes them, etcdctl's ASCII tables, and the
//! formats of `snapshot status`, `member list` and `endpoint status` (etcdctl 3.4's
//! `printer_simple.go` / `printer_table.go`).

use crate::proto::etcdserverpb::{Member, StatusResponse};
use crate::snapshot::SnapshotStatus;

/// go-humanize's `Bytes`, which etcdctl uses: SI units, one decimal below 10.
pub fn humanize(bytes: u64) -> String {
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let e = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let value = (bytes as f64 / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", units[e])
    } else {
        format!("{value:.0} {}", units[e])
    }
}

/// An etcdctl table: centred headers, right-aligned cells, `+---+` rules.
pub fn table(heads: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = heads
        .iter()
        .enumerate()
        .map(|(i, h)| {
            rows.iter()
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
                .max(h.len())
        })
        .collect();
    let rule: String = widths
        .iter()
        .map(|w| format!("+{}", "-".repeat(w + 2)))
        .collect::<String>()
        + "+\n";
    let head: String = heads
        .iter()
        .zip(&widths)
        .map(|(h, w)| format!("| {h:^w$} "))
        .collect::<String>()
        + "|\n";
    let mut out = format!("{rule}{head}{rule}");
    for row in rows {
        let line: String = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("| {c:>w$} "))
            .collect::<String>()
            + "|\n";
        out.push_str(&line);
    }
    out.push_str(&rule);
    out
}

/// `snapshot status` in `simple`, `json` or `table` form.
pub fn format_status(s: &SnapshotStatus, format: &str) -> Result<String, String> {
    let size = humanize(s.total_size);
    match format {
        "simple" => Ok(format!(
            "{:x}, {}, {}, {size}\n",
            s.hash, s.revision, s.total_keys
        )),
        "json" => Ok(format!(
            "{{\"hash\":{},\"revision\":{},\"totalKey\":{},\"totalSize\":{}}}\n",
            s.hash, s.revision, s.total_keys, s.total_size
        )),
        "table" => {
            let row = vec![
                format!("{:x}", s.hash),
                s.revision.to_string(),
                s.total_keys.to_string(),
                size,
            ];
            Ok(table(
                &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
                &[row],
            ))
        }
        other => Err(format!("{other} not supported as output format")),
    }
}

/// One member as `member list` prints it: ID, status, name, peer and client URLs,
/// learner.
pub fn member_row(m: &Member) -> Vec<String> {
    let status = if m.name.is_empty() {
        "unstarted"
    } else {
        "started"
    };
    vec![
        format!("{:x}", m.id),
        status.into(),
        m.name.clone(),
        m.peer_ur_ls.join(","),
        m.client_ur_ls.join(","),
        m.is_learner.to_string(),
    ]
}

/// The heads of `member list -w table`.
pub const MEMBER_HEADS: [&str; 6] = [
    "ID",
    "STATUS",
    "NAME",
    "PEER ADDRS",
    "CLIENT ADDRS",
    "IS LEARNER",
];

/// One endpoint as `endpoint status` prints it.
pub fn status_row(endpoint: &str, s: &StatusResponse) -> Vec<String> {
    let member = s.header.as_ref().map(|h| h.member_id).unwrap_or_default();
    vec![
        endpoint.to_string(),
        format!("{member:x}"),
        s.version.clone(),
        humanize(s.db_size.max(0) as u64),
        (s.leader == member && member != 0).to_string(),
        s.is_learner.to_string(),
        s.raft_term.to_string(),
        s.raft_index.to_string(),
        s.raft_applied_index.to_string(),
        s.errors.join(", "),
    ]
}

/// The heads of `endpoint status -w table`.
pub const STATUS_HEADS: [&str; 10] = [
    "ENDPOINT",
    "ID",
    "VERSION",
    "DB SIZE",
    "IS LEADER",
    "IS LEARNER",
    "RAFT TERM",
    "RAFT INDEX",
    "RAFT APPLIED INDEX",
    "ERRORS",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_etcdctl() {
        assert_eq!(humanize(5), "5 B");
        assert_eq!(humanize(544), "544 B");
        assert_eq!(humanize(24576), "25 kB");
        assert_eq!(humanize(1_234_567), "1.2 MB");
    }

    #[test]
    fn status_table_matches_etcdctl_layout() {
        let s = SnapshotStatus {
            hash: 0x9774a3b0,
            revision: 11,
            total_keys: 14,
            total_size: 24576,
        };
        assert_eq!(
            format_status(&s, "simple").unwrap(),
            "9774a3b0, 11, 14, 25 kB\n"
        );
        let table = format_status(&s, "table").unwrap();
        assert_eq!(
            table,
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | 9774a3b0 |       11 |         14 |      25 kB |\n\
             +----------+----------+------------+------------+\n"
        );
        assert!(format_status(&s, "yaml").is_err());
    }
}
