//! A stopped member's data directory, damaged with `std::fs` the way a disk, a crash or
//! an operator can damage it, then opened again.
//!
//! The rule (`storage/wal.rs` and `storage/wal/recovery.rs` explain it): a **torn
//! tail** — the last record cut short by a crash, nothing but zeros after it — is cut
//! off and the member starts with every record before it. Anything else is **damage**:
//! the open is refused with the file's path and the offset, and the segment is left
//! exactly as it was (size, mtime, contents). The same goes for a store and a log that
//! do not fit together (a deleted WAL, a log behind the store): refused, never a
//! raft-rs index panic.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use kvstore::request::encode_entry;
use kvstore::storage::sled::SledStorage;
use kvstore::storage::wal::{Wal, PREALLOCATE};
use kvstore::{ClusterInfo, MvccStore, Request, Storage};
use raft::eraftpb::{ConfState, Entry, HardState};
use raft::{GetEntriesContext, Storage as _};
use seams::SystemClock;
use sha2::{Digest, Sha256};

/// Puts written by [`write_data_dir`]: `n` entries, each a record of its own and a
/// hard state record after it — about the layout of a member that committed one put
/// per Ready.
const PUTS: u64 = 400;

fn cluster() -> ClusterInfo {
    ClusterInfo::local(1)
}

fn put(i: u64) -> Request {
    Request::put(
        format!("/registry/pods/default/pod-{i}"),
        format!("value {i}"),
    )
}

/// A member's data directory as it leaves it: `n` puts in the log, all committed; the
/// first `applied` of them in the store, which is flushed.
fn write_data_dir(dir: &Path, n: u64, applied: u64) {
    let storage = SledStorage::open(dir, &cluster(), SystemClock::shared()).unwrap();
    let mut store = MvccStore::new();
    for i in 1..=n {
        let entry = Entry {
            index: i,
            term: 1,
            data: encode_entry(i, &put(i)).into(),
            ..Default::default()
        };
        storage.append(&[entry]);
        storage.set_hard_state(&HardState {
            term: 1,
            vote: 1,
            commit: i,
            ..Default::default()
        });
        if i <= applied {
            store.apply(&put(i)).0.unwrap();
            storage.save_applied(i, store.take_mutations());
        }
    }
    storage.sync();
    // Dropping the last handle writes what the store gathered and waits for it.
    drop(storage);
}

/// The newest segment in the data directory's WAL (the one that counts).
fn segment(dir: &Path) -> PathBuf {
    fs::read_dir(dir.join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .max()
        .expect("a segment")
}

/// A record found in a segment: its offset, payload length and kind.
#[derive(Debug, Clone, Copy)]
struct Record {
    offset: usize,
    len: usize,
    kind: u8,
}

impl Record {
    fn end(&self) -> usize {
        self.offset + 9 + self.len
    }
}

/// The records of a segment, read the way the module doc describes the format:
/// length (4 bytes LE), CRC-32 of kind and payload (4 bytes LE), kind, payload.
fn records(bytes: &[u8]) -> Vec<Record> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        let kind = bytes[at + 8];
        let end = at + 9 + len;
        if end > bytes.len() || crc32fast::hash(&bytes[at + 8..end]) != crc {
            break;
        }
        out.push(Record {
            offset: at,
            len,
            kind,
        });
        at = end;
    }
    out
}

/// What must not change when a start is refused.
#[derive(Debug, PartialEq)]
struct Fingerprint {
    size: u64,
    modified: SystemTime,
    sha256: Vec<u8>,
}

fn fingerprint(path: &Path) -> Fingerprint {
    let meta = fs::metadata(path).unwrap();
    Fingerprint {
        size: meta.len(),
        modified: meta.modified().unwrap(),
        sha256: Sha256::digest(fs::read(path).unwrap()).to_vec(),
    }
}

fn write_at(path: &Path, offset: usize, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset as u64).unwrap();
}

fn flip_byte(path: &Path, offset: usize) {
    let mut byte = [0u8];
    fs::File::open(path)
        .unwrap()
        .read_exact_at(&mut byte, offset as u64)
        .unwrap();
    write_at(path, offset, &[byte[0] ^ 0x01]);
}

/// Opens the directory, which must be refused without a byte of its segment changing;
/// returns the message.
fn refused(dir: &Path) -> String {
    let path = segment(dir);
    let before = fingerprint(&path);
    let listing = |dir: &Path| {
        let mut names: Vec<_> = fs::read_dir(dir.join("wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files = listing(dir);
    let err = SledStorage::open(dir, &cluster(), SystemClock::shared())
        .expect_err("a damaged log is refused")
        .to_string();
    assert_eq!(fingerprint(&path), before, "the segment was changed: {err}");
    assert_eq!(listing(dir), files, "files in wal/ changed");
    assert!(err.starts_with("kvstore: storage: "), "{err}");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(
        err.ends_with(
            "refusing to start (restore the member from a snapshot or remove and re-add it)"
        ),
        "{err}"
    );
    err
}

/// Opens the directory, which must work, and checks that entries `1..=last` are all
/// there with their puts, and that the store has its first `applied` puts.
fn opens_with(dir: &Path, last: u64, applied: u64) -> SledStorage {
    let storage = SledStorage::open(dir, &cluster(), SystemClock::shared()).unwrap();
    assert_eq!(storage.first_index().unwrap(), 1);
    assert_eq!(storage.last_index().unwrap(), last);
    let entries = storage
        .entries(1, last + 1, None, GetEntriesContext::empty(false))
        .unwrap();
    for (i, entry) in (1..).zip(&entries) {
        assert_eq!((entry.index, entry.term), (i, 1));
        assert_eq!(entry.data.as_ref(), encode_entry(i, &put(i)).as_slice());
    }
    let hs = storage.hard_state();
    assert!(hs.commit <= last, "{hs:?}");
    let (store, at) = storage.load_store();
    assert_eq!(at, applied);
    assert_eq!(store.key_count(), applied as usize);
    storage
}

/// The records of the one segment in `dir` (and the segment's bytes).
fn layout(dir: &Path) -> (PathBuf, Vec<u8>, Vec<Record>) {
    let path = segment(dir);
    let bytes = fs::read(&path).unwrap();
    let records = records(&bytes);
    assert_eq!(
        records.len() as u64,
        1 + 2 * PUTS,
        "conf state, then entry + hard state"
    );
    (path, bytes, records)
}

#[test]
fn a_flipped_byte_in_the_middle_of_the_log_is_refused_and_nothing_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, bytes, records) = layout(dir.path());
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        PREALLOCATE,
        "zeros ahead"
    );
    // A segment left over from a rewrite must stay too when the start is refused.
    fs::write(dir.path().join("wal/0000000000000000.wal"), b"older").unwrap();
    let middle = records.len() / 2;
    let record = records[middle];
    flip_byte(&path, record.offset + 9 + record.len / 2);

    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "crc mismatch at offset {} (record {}); a valid record follows at offset {}, \
             so this is damage, not a torn write",
            record.offset,
            middle + 1,
            record.end()
        )),
        "{err}"
    );
    // And again: nothing was repaired behind our back.
    refused(dir.path());
    assert_eq!(fs::read(&path).unwrap().len(), bytes.len());
}

#[test]
fn a_garbage_length_in_the_middle_of_the_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, _, records) = layout(dir.path());
    let record = records[records.len() / 3];
    write_at(&path, record.offset, &0x00ff_0000u32.to_le_bytes());
    let err = refused(dir.path());
    assert!(err.contains("past the end of the file"), "{err}");
    assert!(err.contains("a valid record follows"), "{err}");
}

#[test]
fn zeros_in_the_middle_of_the_log_are_refused() {
    // etcd 3.4 reads a zero length as the end of its log and zeroes what follows;
    // here records follow the zeros, so they are damage.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, _, records) = layout(dir.path());
    let record = records[records.len() / 2];
    write_at(&path, record.offset, &[0; 512]);
    let err = refused(dir.path());
    assert!(
        err.contains(&format!("crc mismatch at offset {}", record.offset)),
        "{err}"
    );
}

#[test]
fn bytes_that_are_not_zero_after_the_last_record_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, _, records) = layout(dir.path());
    let end = records.last().unwrap().end();
    write_at(&path, end + 4000, b"junk");
    let err = refused(dir.path());
    assert!(
        err.contains(&format!("not zero follow at offset {}", end + 4000)),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_the_last_record_is_damage_as_in_etcd() {
    // The last record is whole (written to its last byte) but fails its CRC: a torn
    // write cannot leave that, a changed byte can. etcd 3.4 refuses the same damage
    // with `walpb: crc mismatch`.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, _, records) = layout(dir.path());
    let last = *records.last().unwrap();
    flip_byte(&path, last.offset + 9);
    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "crc mismatch at offset {} (record {}); it is the last record, but written to \
             its last byte",
            last.offset,
            records.len()
        )),
        "{err}"
    );
}

#[test]
fn a_log_cut_inside_its_last_record_is_repaired() {
    // The segment was growing when the member was killed: the file ends inside the
    // last record (an entry; its hard state after it is gone too).
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS - 1);
    let (path, _, records) = layout(dir.path());
    let entry = records[records.len() - 2];
    assert_eq!(entry.kind, 1);
    let cut = entry.offset + 9 + entry.len / 2;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let storage = opens_with(dir.path(), PUTS - 1, PUTS - 1);
    assert_eq!(fs::metadata(&path).unwrap().len(), entry.offset as u64);
    // The log goes on after the cut, and reads back the same after another restart.
    storage.append(&[Entry {
        index: PUTS,
        term: 2,
        data: encode_entry(PUTS, &put(PUTS)).into(),
        ..Default::default()
    }]);
    storage.sync();
    drop(storage);
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    assert_eq!(storage.term(PUTS).unwrap(), 2);
}

#[test]
fn a_half_written_last_record_is_repaired() {
    // The last record's bytes stop at a sector boundary; the preallocated zeros follow.
    let dir = tempfile::tempdir().unwrap();
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    let entry = |i: u64, size: usize| Entry {
        index: i,
        term: 1,
        data: vec![b'x'; size].into(),
        ..Default::default()
    };
    storage.append(&[entry(1, 100), entry(2, 3000)]);
    storage.sync();
    drop(storage);
    let path = segment(dir.path());
    let bytes = fs::read(&path).unwrap();
    let last = *records(&bytes).last().unwrap();
    let boundary = (last.offset / 512 + 2) * 512;
    assert!(boundary < last.end());
    write_at(&path, boundary, &vec![0; last.end() - boundary]);

    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    assert_eq!(storage.last_index().unwrap(), 1);
    assert_eq!(fs::metadata(&path).unwrap().len(), last.offset as u64);
}

#[test]
fn a_garbage_length_in_the_last_record_followed_by_zeros_is_repaired() {
    // Past the end of the file, or into the zeros after the record: torn either way.
    for garbage in [0xffff_ff00u32, 5000] {
        let dir = tempfile::tempdir().unwrap();
        write_data_dir(dir.path(), PUTS, PUTS - 1);
        let (path, _, records) = layout(dir.path());
        // Make the last entry the last record: its hard state was never written.
        let hard_state = *records.last().unwrap();
        write_at(&path, hard_state.offset, &vec![0; 9 + hard_state.len]);
        let entry = records[records.len() - 2];
        write_at(&path, entry.offset, &garbage.to_le_bytes());
        opens_with(dir.path(), PUTS - 1, PUTS - 1);
        assert_eq!(fs::metadata(&path).unwrap().len(), entry.offset as u64);
    }
}

#[test]
fn a_record_torn_across_the_preallocation_boundary_is_repaired() {
    // The records reach the end of the first mebibyte of zeros; the next write
    // straddles it and grows the segment. Torn two ways: the file never grew (it ends
    // at the boundary), or it grew but what lies past the boundary is still zeros.
    for grown in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let voters = ConfState::from((vec![1], vec![]));
        let mut wal = Wal::open(dir.path(), &voters).unwrap();
        let entry = |i: u64| Entry {
            index: i,
            term: 1,
            data: vec![b'e'; 1000].into(),
            ..Default::default()
        };
        let mut index = 0;
        while wal.size() < PREALLOCATE + 1000 {
            index += 1;
            wal.append(&[entry(index)]).unwrap();
            wal.sync().unwrap();
        }
        let size = wal.size() as usize;
        drop(wal);
        let path = dir.path().join("0000000000000001.wal");
        let bytes = fs::read(&path).unwrap();
        let records = records(&bytes);
        let boundary = PREALLOCATE as usize;
        // Records: the conf state, then one per entry.
        let straddling = records
            .iter()
            .position(|r| r.offset < boundary && r.end() > boundary)
            .expect("a record straddles the boundary") as u64;
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        if grown {
            file.write_all_at(&vec![0; size - boundary], PREALLOCATE)
                .unwrap();
        } else {
            file.set_len(PREALLOCATE).unwrap();
        }
        drop(file);

        let wal = Wal::open(dir.path(), &voters).unwrap();
        let last = wal.log().last_index();
        assert_eq!(last, straddling - 1, "grown {grown}: the entries before it");
        let all = wal.log().entries(1, last + 1, None).unwrap();
        assert!(all
            .iter()
            .zip(1..)
            .all(|(e, i)| e.index == i && e.data.len() == 1000));
        assert_eq!(wal.size(), records[straddling as usize].offset as u64);
    }
}

/// Opens the directory, which must be refused; returns the message.
fn refused_with_store(dir: &Path) -> String {
    let err = SledStorage::open(dir, &cluster(), SystemClock::shared())
        .expect_err("a data directory that lost entries is refused")
        .to_string();
    assert!(err.starts_with("kvstore: storage: "), "{err}");
    assert!(err.ends_with("re-add it)"), "{err}");
    err
}

/// Removes the store (sled's files), keeping the WAL.
fn remove_store(dir: &Path) {
    for item in fs::read_dir(dir).unwrap() {
        let path = item.unwrap().path();
        if path.file_name().is_some_and(|n| n == "wal") {
            continue;
        }
        if path.is_dir() {
            fs::remove_dir_all(&path).unwrap();
        } else {
            fs::remove_file(&path).unwrap();
        }
    }
}

#[test]
fn a_deleted_wal_with_the_store_ahead_of_it_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    fs::remove_dir_all(dir.path().join("wal")).unwrap();
    let err = refused_with_store(dir.path());
    assert!(
        err.contains(&format!(
            "/wal: no write-ahead log, but the key-value store has applied entries up to \
             {PUTS}: the log was deleted or lost"
        )),
        "{err}"
    );
    assert!(!dir.path().join("wal").exists(), "nothing was created");
}

#[test]
fn a_wal_behind_the_store_is_refused() {
    // The WAL replaced by an older copy of itself: the store has entries it lacks.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), 100, 100);
    let old = fs::read(segment(dir.path())).unwrap();
    drop(opens_with(dir.path(), 100, 100));
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    let mut store = storage.load_store().0;
    for i in 101..=PUTS {
        storage.append(&[Entry {
            index: i,
            term: 1,
            data: encode_entry(i, &put(i)).into(),
            ..Default::default()
        }]);
        store.apply(&put(i)).0.unwrap();
        storage.save_applied(i, store.take_mutations());
    }
    storage.sync();
    drop(storage);
    fs::write(segment(dir.path()), old).unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "the log ends at entry 100, but the key-value store has applied entries up to \
             {PUTS}"
        )),
        "{err}"
    );
}

#[test]
fn a_wal_ahead_of_the_store_is_replayed() {
    // The store is written without waiting for the disk: after a crash the log holds
    // entries the store lost, and they are applied again.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, 10);
    opens_with(dir.path(), PUTS, 10);
    // Even with the store gone entirely, an uncompacted log replays from entry 1.
    remove_store(dir.path());
    opens_with(dir.path(), PUTS, 0);
}

#[test]
fn a_store_behind_the_start_of_a_compacted_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    storage.compact(300);
    drop(storage);
    remove_store(dir.path());
    let err = refused(dir.path());
    assert!(
        err.contains(
            "the log starts at entry 300, but the key-value store has applied entries only \
             up to 0: entries 1 to 299 are in neither"
        ),
        "{err}"
    );
}

#[test]
fn a_segment_truncated_in_the_middle_is_refused() {
    // Cut at a record boundary, a truncation looks like a clean end; what gives it away
    // is the store ahead of it, or — in a segment rewritten by a compaction, whose hard
    // state comes before its entries — a commit beyond the log's end.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, PUTS);
    let (path, _, written) = layout(dir.path());
    let cut = written[written.len() / 2].offset;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains("but the key-value store has applied entries up to"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), PUTS, 100);
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    storage.compact(50);
    drop(storage);
    let path = segment(dir.path());
    let rewritten = records(&fs::read(&path).unwrap());
    // Base, conf state, hard state, then entries 50..=PUTS.
    let cut = rewritten[3 + 150].offset;
    OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    let err = refused(dir.path());
    assert!(
        err.contains(&format!(
            "the hard state says entries up to {PUTS} are committed, but the log ends at \
             entry 199: the log was truncated"
        )),
        "{err}"
    );
}

#[test]
fn a_commit_lost_in_a_crash_is_raised_to_what_the_store_applied() {
    // A commit index alone is not synced, so after a crash the store can have applied
    // entries beyond the commit in the log's hard state. raft-rs refuses an applied
    // index above the commit (with a panic): the open raises the commit instead.
    let dir = tempfile::tempdir().unwrap();
    write_data_dir(dir.path(), 20, 15);
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    storage.set_hard_state(&HardState {
        term: 1,
        vote: 1,
        commit: 8,
        ..Default::default()
    });
    storage.sync();
    drop(storage);
    let storage = SledStorage::open(dir.path(), &cluster(), SystemClock::shared()).unwrap();
    assert_eq!(storage.hard_state().commit, 15);
    let (_, applied) = storage.load_store();
    let config = raft::Config {
        id: 1,
        applied,
        election_tick: 10,
        heartbeat_tick: 1,
        ..Default::default()
    };
    let logger = slog::Logger::root(slog::Discard, slog::o!());
    let node = raft::RawNode::new(&config, storage, &logger).unwrap();
    assert_eq!(node.raft.raft_log.committed, 15);
}

/// The real binary on a damaged data directory: it must exit at once, non-zero, with
/// the reason on its last line, and leave the segment alone.
#[test]
fn etcd_refuses_to_start_on_a_damaged_wal_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("a.etcd");
    write_data_dir(&data, PUTS, PUTS);
    let (path, _, records) = layout(&data);
    let record = records[records.len() / 2];
    flip_byte(&path, record.offset + 9);
    let before = fingerprint(&path);

    let out = Command::new(env!("CARGO_BIN_EXE_etcd"))
        .args(["--name", "etcd1", "--data-dir"])
        .arg(&data)
        .args([
            "--listen-client-urls",
            "http://127.0.0.1:0",
            "--listen-peer-urls",
            "http://127.0.0.1:0",
            "--initial-cluster",
            "etcd1=http://10.0.0.11:2380",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let reason = stderr.lines().last().unwrap_or_default();
    assert!(
        reason.starts_with(&format!(
            "etcd: kvstore: storage: {}: crc mismatch at offset {}",
            path.display(),
            record.offset
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(fingerprint(&path), before);
}

/// A member process that is killed (by its PID) when dropped, so a failing test
/// leaves nothing running.
struct Member {
    child: std::process::Child,
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A member whose data directory was wiped while it is still in the cluster starts
/// like a new one, with an empty log. Nothing on its disk says otherwise; it learns
/// from the leader, whose first heartbeat says entries up to N are committed — entries
/// it does not have. raft-rs panics on that (`to_commit N is out of range [last_index
/// 0]`; etcd 3.4 panics the same way, "Was the raft log corrupted, truncated, or
/// lost?"). The member must instead exit non-zero with that reason in words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_whose_data_dir_was_wiped_exits_with_the_reason() {
    use kvstore::client::{Client, ClientConfig};
    use kvstore::proto::etcdserverpb::PutRequest;
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let root = tempfile::tempdir().unwrap();
    let ports: Vec<(u16, u16)> = (0..3).map(|_| (free_port(), free_port())).collect();
    let spec: Vec<String> = (0..3)
        .map(|i| format!("m{i}=http://127.0.0.1:{}", ports[i].1))
        .collect();
    let spec = spec.join(",");
    let start = |i: usize| {
        let child = Command::new(env!("CARGO_BIN_EXE_etcd"))
            .args(["--name", &format!("m{i}"), "--data-dir"])
            .arg(root.path().join(format!("m{i}")))
            .args([
                "--listen-client-urls",
                &format!("http://127.0.0.1:{}", ports[i].0),
            ])
            .args([
                "--listen-peer-urls",
                &format!("http://127.0.0.1:{}", ports[i].1),
            ])
            .args(["--initial-cluster", &spec])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Member { child }
    };
    let mut members: Vec<Member> = (0..3).map(start).collect();
    let endpoints = ports
        .iter()
        .map(|(client, _)| format!("http://127.0.0.1:{client}"))
        .collect();
    let client = Client::new(ClientConfig::new(endpoints)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut written = 0;
    while written < 30 {
        assert!(Instant::now() < deadline, "the cluster never took 30 puts");
        let put = PutRequest {
            key: format!("k{written}").into(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        if client.put(put).await.is_ok() {
            written += 1;
        }
    }

    drop(members.pop()); // killed
    fs::remove_dir_all(root.path().join("m2")).unwrap();
    let mut wiped = start(2);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = wiped.child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            wiped.child.kill().unwrap();
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut wiped.child.stderr.take().unwrap(), &mut stderr).unwrap();
    let status = status.unwrap_or_else(|| panic!("still running after 60 s: {stderr}"));
    assert_eq!(status.code(), Some(1), "etcd's fatal exit: {stderr}");
    let reason = stderr.lines().last().unwrap_or_default();
    assert!(reason.starts_with("etcd: "), "{stderr}");
    assert!(
        reason.contains("has already been bootstrapped")
            || reason.contains("was the raft log corrupted, truncated, or lost?"),
        "{stderr}"
    );
    eprintln!("the wiped member said: {reason}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("out of range"),
        "a raft-rs panic, not a reason: {stderr}"
    );
}

mod any_damage {
    //! Whatever bytes of a segment change, opening it never panics: it is refused with
    //! the segment left as it was, or it opens with a prefix of the log (a torn tail
    //! costs the records of the last write, never a record in the middle).
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Change {
        Flip { at: usize },
        Zero { at: usize, len: usize },
        Garbage { at: usize, bytes: Vec<u8> },
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            any::<usize>().prop_map(|at| Change::Flip { at }),
            (any::<usize>(), 1usize..2000).prop_map(|(at, len)| Change::Zero { at, len }),
            (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
                .prop_map(|(at, bytes)| Change::Garbage { at, bytes }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        #[test]
        fn a_changed_segment_is_refused_or_opens_with_a_prefix(
            changes in prop::collection::vec(change(), 1..4),
            near_the_end in any::<bool>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let voters = ConfState::from((vec![1], vec![]));
            let mut wal = Wal::open(dir.path(), &voters).unwrap();
            let entries: Vec<Entry> = (1..=60)
                .map(|i| Entry {
                    index: i,
                    term: 1,
                    data: vec![i as u8; 50 + (i as usize * 37) % 700].into(),
                    ..Default::default()
                })
                .collect();
            for chunk in entries.chunks(7) {
                wal.append(chunk).unwrap();
                wal.sync().unwrap();
            }
            let size = wal.size() as usize;
            drop(wal);
            let path = dir.path().join("0000000000000001.wal");
            let mut bytes = fs::read(&path).unwrap();
            // Half the cases aim at the last records and the zeros after them.
            let (from, span) = if near_the_end { (size - 2000, 6000) } else { (0, bytes.len()) };
            for change in &changes {
                let at = |a: usize| from + a % span;
                match change {
                    Change::Flip { at: a } => bytes[at(*a)] ^= 0x10,
                    Change::Zero { at: a, len } => {
                        let start = at(*a);
                        let end = (start + len).min(bytes.len());
                        bytes[start..end].fill(0);
                    }
                    Change::Garbage { at: a, bytes: garbage } => {
                        let start = at(*a).min(bytes.len() - garbage.len());
                        bytes[start..start + garbage.len()].copy_from_slice(garbage);
                    }
                }
            }
            fs::write(&path, &bytes).unwrap();
            let before = fingerprint(&path);
            match Wal::open(dir.path(), &voters) {
                Err(e) => {
                    prop_assert_eq!(fingerprint(&path), before, "changed, then refused: {}", e);
                    prop_assert!(e.to_string().contains("refusing to start"), "{}", e);
                }
                Ok(wal) => {
                    let log = wal.log();
                    let got = log.entries(1, log.last_index() + 1, None).unwrap();
                    prop_assert_eq!(&got[..], &entries[..got.len()]);
                }
            }
        }
    }
}
