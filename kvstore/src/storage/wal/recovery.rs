//! Reading the log back at start: where the newest segment's records end, whether
//! what follows them is a torn write (cut off) or damage (refused), and the log the
//! records add up to — all without changing a byte ([`Wal::recover`]); the changes
//! (cutting a torn tail, removing leftovers) wait for [`Recovered::open`].
//!
//! A segment is read from its first byte, record by record, until a record does not
//! check out: its header or payload runs past the end of the file, or its CRC does not
//! match. Everything before that record is the log. What the bad record and the bytes
//! after it look like decides what happens next, and the rules come from how bytes
//! reach this file (see the [`super`] module doc):
//!
//! - **The normal end.** Nothing but zeros from there on (or nothing at all): the
//!   preallocated space ahead of the records. A zero header fails its CRC, so this is
//!   where every clean read stops.
//! - **A torn tail.** A crash in the middle of the last write: the member wrote the
//!   records of a Ready with one `write` and was killed (or lost power) before the
//!   `fdatasync` finished. The kernel copies a write into the page cache a page at a
//!   time and a disk persists whole sectors, so a write cut short stops at a sector
//!   boundary: the record it was writing has its bytes up to some sector boundary and
//!   zeros after it (the preallocated zeros it was overwriting), or the file ends
//!   inside it (the segment was growing). Nothing after it is written: no valid
//!   record, no byte that is not zero. That record is cut off — it was never synced,
//!   so no one was told about it — and the log goes on from there.
//! - **Damage.** Anything else: a record failing its CRC with a valid record after it
//!   (a flipped byte in the middle of the log), with bytes that are not zero after it,
//!   or complete to its last byte (a record a torn write could not have left: its
//!   last sector was written, so it was written whole, and a byte in it changed since).
//!   Cutting the log there would throw away records that were synced — entries this
//!   member may have acknowledged to a leader, votes it cast. So the member refuses to
//!   start and leaves the file as it is, byte for byte; an operator decides what to do.
//!
//! A damaged *length* field needs care: a length that points past the end of the file
//! looks like a record cut short by the end of the file. So before anything is called
//! torn, the rest of the segment is searched, at every offset, for a record that passes
//! its CRC; if one is found, the bad record is damage whatever its length says.
//!
//! etcd 3.4 draws the line in a similar place: its decoder calls a record that fails
//! its CRC torn only in the last file and only if one of the record's 512-byte sectors
//! is all zeros; any other mismatch is `walpb: crc mismatch`, and the member exits.
//! (It treats a zero length as the end of the log, though, and zeroes whatever
//! follows: a zeroed header in the middle of its log silently drops the records after
//! it. This reader refuses that, because non-zero bytes follow.)
//!
//! The price of these rules is a false alarm in one case: a power cut that persisted a
//! later sector of the last write but not an earlier one (a disk may reorder the writes
//! in its cache) leaves zeros *followed by* records, and is refused. That is the safe
//! side: the member does not start, and nothing is lost silently.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState};

use super::{
    encode, encode_record, io_error, segment_name, Log, Slot, Wal, BASE, CONF_STATE, ENTRY,
    HARD_STATE, REFUSE,
};
use crate::error::{Error, Result};

/// A record read back: kind, payload, and its offset in the segment.
type Record<'a> = (u8, &'a [u8], u64);

/// Bytes in a record's header: length, CRC, kind.
pub(super) const HEADER: usize = 9;

/// The unit in which a write reaches the disk (and a torn one stops): a sector.
const SECTOR: usize = 512;

/// What reading a segment found.
#[derive(Debug)]
struct Scan<'a> {
    /// Every record that checked out, in order.
    records: Vec<Record<'a>>,
    /// Where they end: the segment's log is `bytes[..end]`.
    end: usize,
    /// Set when the record at `end` is a torn write (to be cut off): what it looked like.
    torn: Option<String>,
}

/// Bytes in a segment that are neither records nor a torn tail. The text says what and
/// where (offset and record number), worded for the operator who reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Damage(String);

/// The CRC-32 of a record: over its kind byte and its payload.
pub(super) fn checksum(kind: u8, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    crc.update(payload);
    crc.finalize()
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// How the record at `at` fails, if it does.
enum Bad {
    /// Fewer than [`HEADER`] bytes left.
    HeaderCut,
    /// The payload length points past the end of the file.
    PastEnd { len: usize },
    /// The record fits but its CRC does not match; it ends at `end`.
    Crc { end: usize },
}

/// The record at `at`, or how it fails.
fn record_at(bytes: &[u8], at: usize) -> Result<(Record<'_>, usize), Bad> {
    if bytes.len() - at < HEADER {
        return Err(Bad::HeaderCut);
    }
    let len = u32_at(bytes, at) as usize;
    let crc = u32_at(bytes, at + 4);
    let kind = bytes[at + 8];
    let end = match (at + HEADER).checked_add(len) {
        Some(end) if end <= bytes.len() => end,
        _ => return Err(Bad::PastEnd { len }),
    };
    let payload = &bytes[at + HEADER..end];
    if checksum(kind, payload) != crc {
        return Err(Bad::Crc { end });
    }
    Ok(((kind, payload, at as u64), end))
}

/// Reads the records of a segment and classifies what stops them (see the module doc).
fn scan(bytes: &[u8]) -> Result<Scan<'_>, Damage> {
    let mut records = Vec::new();
    let mut at = 0;
    let mut torn = None;
    while at < bytes.len() {
        match record_at(bytes, at) {
            Ok((record, end)) => {
                records.push(record);
                at = end;
            }
            Err(bad) => {
                torn = classify(bytes, at, records.len() + 1, bad)?;
                break;
            }
        }
    }
    // A segment's first records are written and synced before it gets its name, so
    // they cannot be torn: a segment without one was cut short or zeroed.
    if records.is_empty() {
        return Err(Damage(format!(
            "no record checks out ({} bytes, none a whole first record), but a segment is \
             synced whole before it is used: it was truncated or overwritten",
            bytes.len()
        )));
    }
    Ok(Scan {
        records,
        end: at,
        torn,
    })
}

/// The bad record `number` at `at`: the normal end (`None`), a torn tail (what it
/// looked like), or damage.
fn classify(bytes: &[u8], at: usize, number: usize, bad: Bad) -> Result<Option<String>, Damage> {
    let rest = &bytes[at..];
    if rest.iter().all(|&b| b == 0) {
        return Ok(None); // the preallocated zeros: where the log ends
    }
    let size = bytes.len();
    // Where the record claims to end (past the file's end if it is cut by it), and
    // what it is called in a message.
    let (claimed_end, what) = match bad {
        Bad::HeaderCut => (
            at + HEADER,
            format!("a record header cut short at offset {at} (record {number})"),
        ),
        Bad::PastEnd { len } => (
            at.saturating_add(HEADER).saturating_add(len),
            format!(
                "record {number} at offset {at} claims {len} bytes, past the end of the \
                 file ({size} bytes)"
            ),
        ),
        Bad::Crc { end } => (
            end,
            format!("crc mismatch at offset {at} (record {number})"),
        ),
    };
    let damage = |why: String| {
        Damage(format!(
            "{what}; {why}, so this is damage, not a torn write"
        ))
    };
    if let Some(next) = next_valid_record(bytes, at + 1) {
        return Err(damage(format!("a valid record follows at offset {next}")));
    }
    let stored_end = claimed_end.min(size);
    if let Some(offset) = bytes[stored_end..].iter().position(|&b| b != 0) {
        let offset = stored_end + offset;
        return Err(damage(format!(
            "bytes that are not zero follow at offset {offset} (a torn write leaves only \
             zeros after it)"
        )));
    }
    // Where the record's written bytes stop; a torn write stops at a sector boundary,
    // so one must lie between there and the record's claimed end.
    let written = bytes[at..stored_end]
        .iter()
        .rposition(|&b| b != 0)
        .map_or(at, |last| at + last + 1);
    let cut = claimed_end > size || written.div_ceil(SECTOR) * SECTOR < claimed_end;
    if !cut {
        return Err(damage(
            "it is the last record, but written to its last byte (a torn write leaves \
             zeros from a sector boundary to the record's end)"
                .to_string(),
        ));
    }
    Ok(Some(what))
}

/// The offset of the first record at or after `from` (at any byte, not only where a
/// record would start) whose CRC matches: proof that the log went on after a bad
/// record. The kind byte is checked first, so runs of zeros are passed over quickly.
fn next_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    let last_start = bytes.len().checked_sub(HEADER)?;
    (from..=last_start).find(|&at| {
        let kind = bytes[at + 8];
        (1..=4).contains(&kind) && record_at(bytes, at).is_ok()
    })
}

// Replaying the records, and the directory as it was found.

/// The base record's three numbers: snapshot index and term, first entry's index.
fn decode_base(payload: &[u8]) -> Option<(u64, u64, u64)> {
    let number = |i: usize| Some(u64::from_be_bytes(payload.get(i..i + 8)?.try_into().ok()?));
    if payload.len() != 24 {
        return None;
    }
    Some((number(0)?, number(8)?, number(16)?))
}

/// Replays one record (at `offset` in its segment) onto `log`. `first` is where the
/// entries of a rewritten segment start (its base record says so: compaction may have
/// left a gap after the snapshot). A record that passed its CRC but makes no sense is
/// said so in words.
fn apply_record(
    log: &mut Log,
    first: &mut Option<u64>,
    (kind, payload, offset): Record<'_>,
) -> std::result::Result<(), String> {
    let decode_err = |e: protobuf::ProtobufError| format!("it does not decode: {e}");
    match kind {
        ENTRY => {
            let mut entry = Entry::default();
            entry.merge_from_bytes(payload).map_err(decode_err)?;
            let starts_here = log.entries.is_empty() && first.take() == Some(entry.index);
            let slot = Slot::Here {
                entry: Box::new(entry),
                offset,
            };
            if starts_here {
                log.entries.push_back(slot);
                return Ok(());
            }
            log.append(vec![slot])
        }
        HARD_STATE => {
            let mut hs = HardState::default();
            hs.merge_from_bytes(payload).map_err(decode_err)?;
            log.hard_state = hs;
            Ok(())
        }
        CONF_STATE => {
            let mut cs = ConfState::default();
            cs.merge_from_bytes(payload).map_err(decode_err)?;
            log.conf_state = cs;
            Ok(())
        }
        BASE => {
            let (index, term, first_entry) = decode_base(payload)
                .ok_or_else(|| format!("a base record of {} bytes, not 24", payload.len()))?;
            log.reset(index, term);
            *first = Some(first_entry);
            Ok(())
        }
        other => Err(format!(
            "a record of unknown kind {other} ({} bytes)",
            payload.len()
        )),
    }
}

/// A WAL directory as [`Wal::recover`] found it, read without changing a byte: the
/// caller can still refuse to start and leave everything as it was.
#[derive(Debug)]
pub struct Recovered {
    dir: PathBuf,
    /// The newest segment and what its records add up to; `None` if there is none.
    newest: Option<Newest>,
    /// Files that go once the log is opened: older segments a rewrite left behind (the
    /// newest holds all they held) and `.tmp` segments whose rewrite did not finish.
    leftovers: Vec<PathBuf>,
}

#[derive(Debug)]
struct Newest {
    sequence: u64,
    log: Log,
    /// Where its records end (a torn record, or the preallocated zeros, start here).
    end: u64,
    /// The file's length.
    size: u64,
    /// A torn tail to cut off, and what it looked like.
    torn: Option<String>,
}

impl Recovered {
    /// The log on disk; `None` when the directory has no segment (a new member — or
    /// one whose log was deleted, which only the store can tell: [`crate::storage::sled`]).
    pub fn log(&self) -> Option<&Log> {
        self.newest.as_ref().map(|n| &n.log)
    }

    /// The segment the log was read from (the directory if there is none).
    pub fn path(&self) -> PathBuf {
        match &self.newest {
            Some(newest) => self.dir.join(segment_name(newest.sequence)),
            None => self.dir.clone(),
        }
    }

    /// Opens the log for appending: removes the leftovers, cuts off a torn tail (as etcd
    /// repairs its last file), or — with no segment at all — starts a new log whose
    /// voters are `conf_state`.
    pub fn open(self, conf_state: &ConfState) -> Result<Wal> {
        let Recovered {
            dir,
            newest,
            leftovers,
        } = self;
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, "create the wal directory", e))?;
        for leftover in &leftovers {
            fs::remove_file(leftover).map_err(|e| io_error(leftover, "remove", e))?;
        }
        let Some(Newest {
            sequence,
            mut log,
            end,
            size,
            torn,
        }) = newest
        else {
            let mut first = Vec::new();
            encode_record(&mut first, CONF_STATE, &encode(conf_state));
            let log = Log {
                conf_state: conf_state.clone(),
                ..Log::default()
            };
            return Wal::write_segment(&dir, 1, &first, log);
        };
        let path = dir.join(segment_name(sequence));
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "open", e))?;
        if let Some(torn) = &torn {
            tracing::warn!(
                path = %path.display(),
                offset = end,
                "wal: repairing a torn tail: {torn}; the records before it are the log"
            );
        }
        if end < size {
            // The zeros grown ahead and, after a crash, a torn write: drop them. The
            // next sync grows the file again.
            file.set_len(end)
                .and_then(|()| file.sync_all())
                .map_err(|e| io_error(&path, "cut the wal's tail", e))?;
        }
        log.file = Some(Arc::new(
            File::open(&path).map_err(|e| io_error(&path, "open", e))?,
        ));
        Ok(Wal {
            dir,
            file,
            sequence,
            written: end,
            allocated: end,
            pending: Vec::new(),
            log,
            released: 0,
        })
    }
}

impl Wal {
    /// Reads the log in `dir` back without changing anything. Damage (see the module
    /// doc: anything but a torn tail) is an error naming the segment, the offset and
    /// the record; nothing is repaired here, so a refused start leaves the files as
    /// they were.
    pub fn recover(dir: &Path) -> Result<Recovered> {
        let mut segments = Vec::new();
        let mut leftovers = Vec::new();
        let listing = match fs::read_dir(dir) {
            Ok(listing) => Some(listing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_error(dir, "list", e)),
        };
        for item in listing.into_iter().flatten() {
            let path = item.map_err(|e| io_error(dir, "list", e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".tmp") {
                // A segment whose rewrite did not finish: the older one still holds all.
                leftovers.push(path);
            } else if let Some(seq) = name
                .strip_suffix(".wal")
                .and_then(|s| u64::from_str_radix(s, 16).ok())
            {
                segments.push(seq);
            }
        }
        segments.sort_unstable();
        let newest = match segments.pop() {
            Some(sequence) => Some(Wal::read_segment(
                &dir.join(segment_name(sequence)),
                sequence,
            )?),
            None => None,
        };
        // Only the newest segment counts. An older one is left over from a crash just
        // after a rewrite, which syncs the new segment before it deletes the old.
        leftovers.extend(segments.iter().map(|old| dir.join(segment_name(*old))));
        Ok(Recovered {
            dir: dir.to_path_buf(),
            newest,
            leftovers,
        })
    }

    /// Reads one segment and replays its records into a [`Log`].
    fn read_segment(path: &Path, sequence: u64) -> Result<Newest> {
        let bytes = fs::read(path).map_err(|e| io_error(path, "read", e))?;
        let refuse = |what: String| Error::Storage(format!("{}: {what}: {REFUSE}", path.display()));
        let scan = scan(&bytes).map_err(|Damage(what)| refuse(what))?;
        let mut log = Log::default();
        let mut first = None;
        for (number, record) in scan.records.into_iter().enumerate() {
            let offset = record.2;
            apply_record(&mut log, &mut first, record).map_err(|what| {
                refuse(format!("record {} at offset {offset}: {what}", number + 1))
            })?;
        }
        Ok(Newest {
            sequence,
            log,
            end: scan.end as u64,
            size: bytes.len() as u64,
            torn: scan.torn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_le_bytes().to_vec();
        out.extend(checksum(kind, payload).to_le_bytes());
        out.push(kind);
        out.extend(payload);
        out
    }

    /// Three records of 600 bytes (each spans a sector boundary), then zeros.
    fn segment() -> (Vec<u8>, [usize; 3]) {
        let mut bytes = Vec::new();
        let mut starts = [0; 3];
        for (i, start) in starts.iter_mut().enumerate() {
            *start = bytes.len();
            bytes.extend(record(1, &vec![b'a' + i as u8; 600]));
        }
        bytes.resize(4096, 0);
        (bytes, starts)
    }

    #[test]
    fn records_then_zeros_is_the_normal_end() {
        let (bytes, starts) = segment();
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.records.len(), 3);
        assert_eq!(scan.end, starts[2] + HEADER + 600);
        assert_eq!(scan.torn, None);
    }

    #[test]
    fn a_last_record_zero_from_a_sector_boundary_is_torn() {
        let (mut bytes, starts) = segment();
        // Written up to a sector boundary inside the last record, zeros after.
        assert!(starts[2] < 1536 && 1536 < starts[2] + HEADER + 600);
        bytes[1536..starts[2] + HEADER + 600].fill(0);
        let scan = scan(&bytes).unwrap();
        assert_eq!((scan.records.len(), scan.end), (2, starts[2]));
        assert!(scan.torn.unwrap().contains("crc mismatch"));
    }

    #[test]
    fn a_flipped_byte_anywhere_but_a_torn_tail_is_damage() {
        let (bytes, starts) = segment();
        for (number, start) in starts.iter().enumerate() {
            let mut bytes = bytes.clone();
            bytes[start + HEADER + 100] ^= 1;
            let Damage(why) = scan(&bytes).unwrap_err();
            assert!(
                why.starts_with(&format!(
                    "crc mismatch at offset {start} (record {}",
                    number + 1
                )),
                "{why}"
            );
        }
    }

    #[test]
    fn a_garbage_length_is_damage_when_records_follow() {
        let (mut bytes, starts) = segment();
        bytes[starts[1] + 3] = 0x7f;
        let Damage(why) = scan(&bytes).unwrap_err();
        assert!(why.contains("past the end of the file"), "{why}");
        assert!(why.contains(&format!("valid record follows at offset {}", starts[2])));
    }

    #[test]
    fn a_segment_without_a_whole_first_record_is_damage() {
        let (bytes, _) = segment();
        for broken in [Vec::new(), vec![0; 4096], bytes[..300].to_vec()] {
            let Damage(why) = scan(&broken).unwrap_err();
            assert!(why.starts_with("no record checks out"), "{why}");
        }
    }

    #[test]
    fn zeros_followed_by_data_are_damage() {
        let (mut bytes, starts) = segment();
        bytes[starts[1]..starts[1] + HEADER].fill(0);
        let Damage(why) = scan(&bytes).unwrap_err();
        assert!(
            why.contains(&format!("offset {} (record 2)", starts[1])),
            "{why}"
        );
    }
}
