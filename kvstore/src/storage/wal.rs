//! The write-ahead log: the Raft log and hard state in one append-only file.
//!
//! etcd keeps its Raft log in a WAL (a directory of append-only files) and its keys in
//! bbolt. Raft needs the log durable *before* a message that depends on it leaves, so
//! every Ready ends in an `fdatasync` of the WAL; the key-value store is written without
//! waiting for the disk, because the log can always replay it. This file is our WAL.
//!
//! Why not keep the log in sled with the store? sled hands its writes to background
//! I/O threads and waits for them, and it makes data durable with `sync_file_range`,
//! which does not flush the drive's cache. Measured (issue 7): about five sled writes
//! and five thread hand-offs per committed entry on every member. Here a Ready is one
//! `write` and one `fdatasync`, on the member's own thread.
//!
//! ## Format
//!
//! A segment file `wal/<sequence, 16 hex digits>.wal` is a series of records:
//!
//! | bytes | what |
//! |---|---|
//! | 4 | payload length, little-endian |
//! | 4 | CRC-32 of the kind byte and the payload, little-endian |
//! | 1 | kind: 1 entry, 2 hard state, 3 conf state, 4 base |
//! | n | payload: a raft-rs protobuf (entry, hard state, conf state); for *base* the snapshot's index and term and the first entry's index (8 bytes big-endian each) |
//!
//! Replaying the records in order rebuilds the log exactly. Each segment stands on its
//! own: the first one starts from an empty log; a later one is written when the log is
//! compacted or replaced by a snapshot, and starts with a *base* record, the conf
//! state, the hard state and every entry still kept. It is written under a temporary
//! name, synced, renamed, and only then are older segments deleted, so a crash at any
//! point leaves one complete segment to read: the newest. An older one found at start
//! is a leftover of such a crash, holds nothing the newest lacks, and is removed
//! unread. (etcd chains its segments, so a damaged or cut earlier segment loses data
//! there; here only the newest is ever read.)
//!
//! ## Preallocation: why a segment ends in zeros
//!
//! `fdatasync` of a file that grew must also commit the file's new size (and, on ext4,
//! its newly allocated blocks) through the filesystem journal: a second write to a
//! second place on the disk. Overwriting bytes that are already allocated and written
//! needs only the data itself. So the segment is grown ahead of its records, a mebibyte
//! of zeros at a time ([`PREALLOCATE`]), and records overwrite the zeros. Measured on
//! this project's machine (ext4, 400-byte records): 170–240 µs per `write` +
//! `fdatasync` when appending, 160 µs over space reserved with `fallocate` (what etcd
//! 3.4 does for its 64 MB segments: the blocks are reserved but marked unwritten, and
//! marking them written is a journal commit), 120 µs over zeros. The zeros cost one
//! larger `fdatasync` per mebibyte (about 1.3 ms, once every 2 500 entries or so).
//! Reading the segment back, the zeros end it: a zero header fails its checksum (the
//! CRC-32 of a kind byte 0 is not 0), and nothing but zeros follows.
//!
//! ## Reading it back: a torn tail, or damage
//!
//! A crash can leave the last write half done: the member was killed, or the power
//! went, between its `write` and the end of its `fdatasync`. That record was never
//! synced, so no other member was told about it, and cutting it off loses nothing
//! anyone relies on — that is a **torn tail**, and [`Wal::open`] repairs it as etcd
//! repairs its last file: the file is cut where the torn record starts, and the log
//! goes on from there (a `wal: repairing a torn tail` line is logged).
//!
//! Everything else that fails a checksum is **damage**: a flipped bit, a zeroed
//! sector, a file an operator or a tool changed. Cutting the log there would throw away
//! every record after it — records that *were* synced: entries this member
//! acknowledged to a leader (which may have counted it towards a majority), votes it
//! cast. A member that forgets them can help elect a leader without a committed entry,
//! or vote twice in a term: the two things Raft exists to prevent. So the member
//! refuses to start and changes nothing, and the message names the file, the offset and
//! the record, as etcd's `walpb: crc mismatch` refusal does (etcd names neither):
//!
//! ```text
//! etcd: kvstore: storage: /data/wal/0000000000000001.wal: crc mismatch at offset 54321
//! (record 2941); a valid record follows at offset 54390, so this is damage, not a torn
//! write: refusing to start (restore the member from a snapshot or remove and re-add it)
//! ```
//!
//! How the two are told apart follows from how bytes reach this file: records only
//! ever overwrite zeros (or grow the file), and a write cut short stops at a sector
//! boundary. So a torn record has its bytes up to a sector boundary and zeros after it
//! (or the file ends inside it), and nothing but zeros follows it. A bad record with a
//! valid record, or any byte that is not zero, after it is damage; so is a last record
//! complete to its last byte that fails its checksum — a changed byte, not a torn
//! write, and etcd 3.4 refuses that one too. `wal/recovery.rs` has the rules in detail,
//! including a garbage length that points past the end of the file.
//!
//! The log must also reach the store it belongs with: [`Wal::recover`] reads it back
//! without changing anything, so that the data directory ([`super::sled`]) can compare
//! it with the store's applied index before the log is opened for appending.
//!
//! In memory the log is a [`Log`], with exactly raft-rs's `MemStorage` semantics (the
//! storage differential test holds the two side by side). Once an entry is applied and
//! on disk, the log keeps only its index, term and place in the file
//! ([`Wal::release`]): Raft reads an applied entry again only to send it to a follower
//! that is far behind, and then it is read back from the file. etcd keeps every entry
//! since its last snapshot in memory; this keeps the member's memory to its index.

mod recovery;

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState};
use raft::StorageError;

pub use self::recovery::Recovered;
use self::recovery::{checksum, HEADER};
use crate::error::{Error, Result};

const ENTRY: u8 = 1;
const HARD_STATE: u8 = 2;
const CONF_STATE: u8 = 3;
const BASE: u8 = 4;
/// The segment grows by this many zero bytes at a time, ahead of its records.
pub const PREALLOCATE: u64 = 1 << 20;
/// How a refusal to start on a damaged or lost log ends: what the operator can do.
pub(crate) const REFUSE: &str =
    "refusing to start (restore the member from a snapshot or remove and re-add it)";

/// One entry of the log: in memory, or — once applied — only in the segment file.
#[derive(Debug, Clone)]
enum Slot {
    /// In memory; its record starts at `offset` in the segment. Boxed, so that the
    /// far more numerous `OnDisk` slots take 32 bytes each, not the 112 of an inline
    /// `Entry`: 8 MB less per member for the 100 000 entries between two compactions.
    Here { entry: Box<Entry>, offset: u64 },
    /// Applied and written: read back from the segment when needed (a follower far
    /// behind), so the log does not hold every entry's data in memory.
    OnDisk { index: u64, term: u64, offset: u64 },
}

impl Slot {
    fn index(&self) -> u64 {
        match self {
            Slot::Here { entry, .. } => entry.index,
            Slot::OnDisk { index, .. } => *index,
        }
    }

    fn term(&self) -> u64 {
        match self {
            Slot::Here { entry, .. } => entry.term,
            Slot::OnDisk { term, .. } => *term,
        }
    }
}

/// The Raft log in memory: what the WAL's records add up to.
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Index and term of the last snapshot the log was reset to (0, 0 if none).
    pub snapshot: (u64, u64),
    /// The entries kept, consecutive.
    entries: VecDeque<Slot>,
    /// Term, vote, commit.
    pub hard_state: HardState,
    /// The voters.
    pub conf_state: ConfState,
    /// The segment, for reading entries back.
    file: Option<Arc<File>>,
}

impl Log {
    /// The first index still in the log (one past the snapshot when empty).
    pub fn first_index(&self) -> u64 {
        self.entries
            .front()
            .map_or(self.snapshot.0 + 1, Slot::index)
    }

    /// The last index in the log (the snapshot's when empty).
    pub fn last_index(&self) -> u64 {
        self.entries.back().map_or(self.snapshot.0, Slot::index)
    }

    /// The term of entry `index`, as `MemStorage` answers it.
    pub fn term(&self, index: u64) -> raft::Result<u64> {
        if index == self.snapshot.0 {
            return Ok(self.snapshot.1);
        }
        if index < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(index - self.first_index()) as usize].term())
    }

    /// Entries `low..high`, cut to `max_size` bytes (at least one).
    pub fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let offset = self.first_index();
        let mut entries = Vec::new();
        let mut size = 0;
        for slot in self
            .entries
            .range((low - offset) as usize..(high - offset) as usize)
        {
            let entry = self.load(slot)?;
            size += u64::from(entry.compute_size());
            entries.push(entry);
            if max_size.is_some_and(|max| size > max) {
                break; // limit_size below keeps at least one, as raft-rs wants
            }
        }
        raft::util::limit_size(&mut entries, max_size);
        Ok(entries)
    }

    /// The entry in `slot`, read back from the segment if it is not in memory. A read
    /// that fails (the disk, or the file changed under us) is an error for raft-rs,
    /// which treats it as fatal, as etcd does a failed read of its log.
    fn load(&self, slot: &Slot) -> raft::Result<Entry> {
        match slot {
            Slot::Here { entry, .. } => Ok(Entry::clone(entry)),
            Slot::OnDisk { index, offset, .. } => {
                let read = match &self.file {
                    Some(file) => read_entry(file, *offset),
                    None => Err(std::io::Error::other("the log has no segment file")),
                };
                read.map_err(|e| {
                    let e = format!("kvstore: cannot read back entry {index}: {e}");
                    raft::Error::Store(StorageError::Other(e.into()))
                })
            }
        }
    }

    /// Appends entries, dropping any at or after the first new index.
    fn append(&mut self, slots: Vec<Slot>) -> std::result::Result<(), String> {
        let Some(first_new) = slots.first().map(Slot::index) else {
            return Ok(());
        };
        if first_new < self.first_index() || first_new > self.last_index() + 1 {
            return Err(format!(
                "entry {first_new} does not follow the log {}..={}",
                self.first_index(),
                self.last_index()
            ));
        }
        self.entries
            .truncate((first_new - self.first_index()) as usize);
        self.entries.extend(slots);
        Ok(())
    }

    /// Drops entries before `first_kept` (nothing if they are already gone).
    fn compact(&mut self, first_kept: u64) {
        let drop = first_kept
            .saturating_sub(self.first_index())
            .min(self.entries.len() as u64);
        self.entries.drain(..drop as usize);
    }

    /// Restarts the log after a snapshot at `index` of `term`.
    fn reset(&mut self, index: u64, term: u64) {
        self.snapshot = (index, term);
        self.entries.clear();
    }
}

/// Reads the entry record at `offset` of a segment.
fn read_entry(file: &File, offset: u64) -> std::io::Result<Entry> {
    use std::os::unix::fs::FileExt;
    let mut header = [0u8; HEADER];
    file.read_exact_at(&mut header, offset)?;
    let [a, b, c, d, ..] = header;
    let len = u32::from_le_bytes([a, b, c, d]) as usize;
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, offset + HEADER as u64)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    if header[8] != ENTRY {
        return Err(bad("not an entry record"));
    }
    if checksum(ENTRY, &payload).to_le_bytes() != header[4..8] {
        return Err(bad("wal: crc mismatch"));
    }
    let mut entry = Entry::default();
    entry
        .merge_from_bytes(&payload)
        .map_err(|_| bad("an entry record that does not decode"))?;
    Ok(entry)
}

/// The log on disk: the current segment, the records not yet written, and the
/// [`Log`] they add up to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    sequence: u64,
    /// Bytes of records in the segment on disk; records in `pending` start here.
    written: u64,
    /// The segment's length: records, then zeros up to here (see [`PREALLOCATE`]).
    allocated: u64,
    pending: Vec<u8>,
    log: Log,
    /// Entries up to this index were released (are read back from the segment).
    released: u64,
}

fn io_error(path: &Path, doing: &str, e: impl std::fmt::Display) -> Error {
    Error::Storage(format!("{}: {doing}: {e}", path.display()))
}

fn corrupt(what: impl std::fmt::Display) -> Error {
    Error::Storage(format!("the write-ahead log is corrupt: {what}"))
}

fn segment_name(sequence: u64) -> String {
    format!("{sequence:016x}.wal")
}

fn encode_record(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend((payload.len() as u32).to_le_bytes());
    out.extend(checksum(kind, payload).to_le_bytes());
    out.push(kind);
    out.extend(payload);
}

fn encode<M: protobuf::Message>(message: &M) -> Vec<u8> {
    message
        .write_to_bytes()
        .expect("raft-rs messages always encode")
}

fn base_payload(log: &Log) -> Vec<u8> {
    let mut payload = log.snapshot.0.to_be_bytes().to_vec();
    payload.extend(log.snapshot.1.to_be_bytes());
    payload.extend(log.first_index().to_be_bytes());
    payload
}

impl Wal {
    /// Opens the log in `dir` (created if missing, starting with `conf_state`) and
    /// replays it: [`Wal::recover`], then [`Recovered::open`].
    pub fn open(dir: &Path, conf_state: &ConfState) -> Result<Wal> {
        Wal::recover(dir)?.open(conf_state)
    }

    /// Writes a complete segment under a temporary name, syncs it, renames it into
    /// place, syncs the directory, and removes every older segment.
    fn write_segment(dir: &Path, sequence: u64, records: &[u8], mut log: Log) -> Result<Wal> {
        let name = segment_name(sequence);
        let tmp = dir.join(format!("{name}.tmp"));
        let path = dir.join(&name);
        let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, "create", e))?;
        file.write_all(records)
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error(&tmp, "write", e))?;
        fs::rename(&tmp, &path).map_err(|e| io_error(&path, "rename into place", e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error(dir, "sync", e))?;
        for older in 1..sequence {
            let _ = fs::remove_file(dir.join(segment_name(older)));
        }
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open", e))?;
        log.file = Some(Arc::new(
            File::open(&path).map_err(|e| io_error(&path, "open", e))?,
        ));
        Ok(Wal {
            dir: dir.to_path_buf(),
            file,
            sequence,
            written: records.len() as u64,
            allocated: records.len() as u64,
            pending: Vec::new(),
            log,
            released: 0,
        })
    }

    /// The log as the records so far make it.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Appends entries (overwriting any suffix from the first new index).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        let before = self.pending.len();
        let mut slots = Vec::with_capacity(entries.len());
        for entry in entries {
            let offset = self.written + self.pending.len() as u64;
            encode_record(&mut self.pending, ENTRY, &encode(entry));
            slots.push(Slot::Here {
                entry: Box::new(entry.clone()),
                offset,
            });
        }
        if let Err(e) = self.log.append(slots) {
            self.pending.truncate(before); // nothing of a refused append is written
            return Err(corrupt(e));
        }
        if let Some(first) = entries.first() {
            // Released entries may have been overwritten; the new ones are in memory.
            self.released = self.released.min(first.index - 1);
        }
        Ok(())
    }

    /// Lets go of the in-memory copy of every written entry up to `applied`: applied
    /// entries are read again only by a follower far behind, and then from the file.
    pub fn release(&mut self, applied: u64) {
        let first = self.log.first_index();
        let start = self.released.max(first.saturating_sub(1)) + 1;
        let written = self.written;
        for index in start..=applied.min(self.log.last_index()) {
            let slot = &mut self.log.entries[(index - first) as usize];
            let Slot::Here { entry, offset } = slot else {
                continue;
            };
            if *offset >= written {
                return; // not on disk yet
            }
            *slot = Slot::OnDisk {
                index: entry.index,
                term: entry.term,
                offset: *offset,
            };
            self.released = index;
        }
    }

    /// Records term, vote and commit.
    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        encode_record(&mut self.pending, HARD_STATE, &encode(hard_state));
        self.log.hard_state = hard_state.clone();
    }

    /// Records the voters.
    pub fn set_conf_state(&mut self, conf_state: &ConfState) {
        encode_record(&mut self.pending, CONF_STATE, &encode(conf_state));
        self.log.conf_state = conf_state.clone();
    }

    /// Drops entries before `first_kept`. Nothing after this needs the old ones, so
    /// the log is rewritten into a new, shorter segment.
    pub fn compact(&mut self, first_kept: u64) -> Result<()> {
        if first_kept <= self.log.first_index() {
            return Ok(());
        }
        self.log.compact(first_kept);
        self.rewrite()
    }

    /// Restarts the log after a snapshot at `index` of `term` (the leader's store was
    /// installed): the hard state's commit moves to `index`, and the voters are the
    /// snapshot's. Written as a new segment.
    pub fn reset(&mut self, index: u64, term: u64, conf_state: &ConfState) -> Result<()> {
        self.log.reset(index, term);
        self.log.hard_state.term = self.log.hard_state.term.max(term);
        self.log.hard_state.commit = index;
        self.log.conf_state = conf_state.clone();
        self.rewrite()
    }

    /// Writes the records not yet written and waits until the disk has them
    /// (`fdatasync`). Nothing to write, nothing to wait for. When the records reach
    /// the end of the zeros, the segment grows by [`PREALLOCATE`] more in the same
    /// write-and-sync. A failed write is retried at the same offset by the next call.
    pub fn sync(&mut self) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if self.pending.is_empty() {
            return Ok(());
        }
        let end = self.written + self.pending.len() as u64;
        let grow_to = (end > self.allocated).then(|| (end / PREALLOCATE + 1) * PREALLOCATE);
        self.file
            .write_all_at(&self.pending, self.written)
            .and_then(|()| match grow_to {
                Some(to) => self.file.write_all_at(&vec![0; (to - end) as usize], end),
                None => Ok(()),
            })
            .and_then(|()| self.file.sync_data())
            .map_err(|e| io_error(&self.dir.join(segment_name(self.sequence)), "write", e))?;
        if let Some(to) = grow_to {
            self.allocated = to;
        }
        self.written = end;
        self.pending.clear();
        Ok(())
    }

    /// Bytes of the current segment (written so far).
    pub fn size(&self) -> u64 {
        self.written
    }

    fn rewrite(&mut self) -> Result<()> {
        self.pending.clear(); // the new segment holds the whole log
        let old = &self.log;
        let mut records = Vec::new();
        encode_record(&mut records, BASE, &base_payload(old));
        encode_record(&mut records, CONF_STATE, &encode(&old.conf_state));
        encode_record(&mut records, HARD_STATE, &encode(&old.hard_state));
        let mut log = Log {
            snapshot: old.snapshot,
            entries: VecDeque::with_capacity(old.entries.len()),
            hard_state: old.hard_state.clone(),
            conf_state: old.conf_state.clone(),
            file: None,
        };
        for slot in &old.entries {
            let entry = old.load(slot).map_err(|e| Error::Storage(e.to_string()))?;
            let offset = records.len() as u64;
            encode_record(&mut records, ENTRY, &encode(&entry));
            log.entries.push_back(Slot::Here {
                entry: Box::new(entry),
                offset,
            });
        }
        let next = Wal::write_segment(&self.dir, self.sequence + 1, &records, log)?;
        *self = next;
        Ok(())
    }
}

impl Drop for Wal {
    /// A clean stop writes what is pending, as a process exiting normally would.
    fn drop(&mut self) {
        let _ = self.sync();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: format!("entry {index}").into_bytes().into(),
            ..Default::default()
        }
    }

    fn voters() -> ConfState {
        ConfState::from((vec![1, 2, 3], vec![]))
    }

    fn segments(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_reopened_log_is_the_log_that_was_synced() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        wal.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .unwrap();
        wal.append(&[entry(3, 2)]).unwrap(); // a new leader overwrote entry 3
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 2,
            ..Default::default()
        };
        wal.set_hard_state(&hs);
        wal.sync().unwrap();
        let before = wal.log().clone();
        std::mem::forget(wal); // a crash: nothing more is written

        let wal = Wal::open(dir.path(), &voters()).unwrap();
        let all = |log: &Log| log.entries(log.first_index(), log.last_index() + 1, None);
        assert_eq!(all(wal.log()).unwrap(), all(&before).unwrap());
        assert_eq!(wal.log().term(3).unwrap(), 2);
        assert_eq!(wal.log().hard_state, hs);
        assert_eq!(wal.log().conf_state, voters());
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_the_log_goes_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        let mut big = entry(2, 1);
        big.data = vec![7; 1500].into(); // spans sector boundaries
        wal.append(&[entry(1, 1), big]).unwrap();
        wal.sync().unwrap();
        let len = wal.size();
        drop(wal);
        // The last record was only half written when the power went: from a sector
        // boundary on, its bytes are still the zeros grown ahead of it.
        let path = dir.path().join(segment_name(1));
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        assert!(
            file.metadata().unwrap().len() > len,
            "zeros follow the records"
        );
        std::os::unix::fs::FileExt::write_all_at(&file, &vec![0; (len - 1024) as usize], 1024)
            .unwrap();
        drop(file);

        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        assert_eq!(wal.log().last_index(), 1, "the torn entry is gone");
        wal.append(&[entry(2, 3)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &voters()).unwrap();
        assert_eq!(wal.log().last_index(), 2);
        assert_eq!(wal.log().term(2).unwrap(), 3, "written after the cut");
    }

    #[test]
    fn the_segment_grows_in_zeros_ahead_of_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let length = || fs::metadata(&path).unwrap().len();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        wal.append(&[entry(1, 1)]).unwrap();
        wal.sync().unwrap();
        assert_eq!(
            length(),
            PREALLOCATE,
            "one step of zeros after the first sync"
        );
        // Records up to and past the first step: the segment grows once more.
        let mut index = 1;
        while wal.size() <= PREALLOCATE {
            let batch: Vec<Entry> = (index + 1..=index + 500).map(|i| entry(i, 1)).collect();
            index += 500;
            wal.append(&batch).unwrap();
            wal.sync().unwrap();
        }
        assert_eq!(length(), 2 * PREALLOCATE);
        drop(wal);
        // Reopened, the zeros are cut off; every record is there and the log goes on.
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        assert_eq!(length(), wal.size());
        assert_eq!(wal.log().last_index(), index);
        wal.append(&[entry(index + 1, 2)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &voters()).unwrap();
        assert_eq!(wal.log().last_index(), index + 1);
        let all = wal.log().entries(1, index + 2, None).unwrap();
        assert!(all.iter().zip(1..).all(|(e, i)| e.index == i));
        assert_eq!(all[index as usize].term, 2);
    }

    #[test]
    fn compaction_rewrites_one_segment_and_a_half_written_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        let entries: Vec<Entry> = (1..=10).map(|i| entry(i, 1)).collect();
        wal.append(&entries).unwrap();
        wal.compact(7).unwrap();
        assert_eq!(segments(dir.path()), vec![segment_name(2)]);
        assert_eq!(wal.log().first_index(), 7);
        assert!(wal.log().term(6).is_err(), "compacted, as in MemStorage");
        wal.append(&[entry(11, 2)]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        // A rewrite that crashed before its rename leaves a temporary file behind.
        fs::write(dir.path().join(format!("{}.tmp", segment_name(3))), b"junk").unwrap();

        let wal = Wal::open(dir.path(), &voters()).unwrap();
        assert_eq!(segments(dir.path()), vec![segment_name(2)]);
        assert_eq!((wal.log().first_index(), wal.log().last_index()), (7, 11));
        assert_eq!(wal.log().term(11).unwrap(), 2);
    }

    #[test]
    fn a_released_slot_is_small() {
        // Index, term and offset: the log's memory per entry once it is applied.
        assert_eq!(std::mem::size_of::<Slot>(), 32);
    }

    #[test]
    fn released_entries_are_read_back_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        let entries: Vec<Entry> = (1..=6).map(|i| entry(i, 1)).collect();
        wal.append(&entries).unwrap();
        wal.release(6);
        assert!(
            matches!(wal.log.entries[0], Slot::Here { .. }),
            "not written yet: kept"
        );
        wal.sync().unwrap();
        wal.release(4);
        let on_disk = |wal: &Wal| {
            wal.log
                .entries
                .iter()
                .filter(|s| matches!(s, Slot::OnDisk { .. }))
                .count()
        };
        assert_eq!(on_disk(&wal), 4);
        assert_eq!(wal.log().entries(1, 7, None).unwrap(), entries);
        assert_eq!(wal.log().term(3).unwrap(), 1);
        // A new leader overwrites entries 4.. (two were released): the new ones count.
        wal.append(&[entry(4, 2), entry(5, 2)]).unwrap();
        wal.sync().unwrap();
        wal.release(5);
        let got = wal.log().entries(1, 6, None).unwrap();
        assert_eq!(got[..3], entries[..3]);
        assert_eq!((got[3].term, got[4].term), (2, 2));
        // Compaction rewrites released entries from the file into the new segment.
        wal.compact(3).unwrap();
        assert_eq!(on_disk(&wal), 0);
        assert_eq!(wal.log().entries(3, 6, None).unwrap(), got[2..]);
    }

    #[test]
    fn a_reset_restarts_the_log_after_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let mut wal = Wal::open(dir.path(), &voters()).unwrap();
        wal.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        wal.reset(40, 3, &ConfState::from((vec![1, 2], vec![])))
            .unwrap();
        drop(wal);
        let wal = Wal::open(dir.path(), &voters()).unwrap();
        let log = wal.log();
        assert_eq!((log.first_index(), log.last_index()), (41, 40));
        assert_eq!(log.term(40).unwrap(), 3);
        assert_eq!((log.hard_state.term, log.hard_state.commit), (3, 40));
        assert_eq!(log.conf_state.voters, vec![1, 2]);
    }
}
