//! Damaging a stopped member's write-ahead log, the two ways a disk does.
//!
//! The WAL (`<data-dir>/wal/<sequence>.wal`, see `kvstore/src/storage/wal.rs`) is a
//! series of records — 4 bytes length, 4 bytes CRC-32 of kind and payload, 1 byte
//! kind, the payload — followed by preallocated zeros. Only the newest segment counts.
//!
//! - A **torn tail**: the machine lost power in the middle of a write. The file ends
//!   in the middle of a record ([`tear_tail`] says which record that can be). A member
//!   must repair this (drop the partial record, which was never acknowledged) and come
//!   back.
//! - A **flipped byte** in the middle of the log, with valid records after it: bit rot,
//!   a bad sector. Repairing by truncation would throw away valid, acknowledged entries,
//!   so the member must refuse to start (non-zero exit, a message naming the file and
//!   offset) and leave the file exactly as it was, as etcd does (`walpb: crc
//!   mismatch`).

use std::fs;
use std::path::{Path, PathBuf};

/// Length, CRC and kind.
const HEADER: usize = 9;

/// The newest segment of a member's WAL.
pub fn newest_segment(data_dir: &Path) -> Result<PathBuf, String> {
    let dir = data_dir.join("wal");
    let mut segments: Vec<PathBuf> = fs::read_dir(&dir)
        .map_err(|e| format!("list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments
        .pop()
        .ok_or_else(|| format!("no segment in {}", dir.display()))
}

/// The (offset, length) of every valid record, in order, up to the first that is
/// not (the zeros after the last record end the list too).
pub fn records(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut at = 0;
    while at + HEADER <= bytes.len() {
        let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
        let (len, crc) = (word(at) as usize, word(at + 4));
        let end = at + HEADER + len;
        if end > bytes.len() || crc32fast::hash(&bytes[at + 8..end]) != crc {
            break;
        }
        found.push((at, HEADER + len));
        at = end;
    }
    found
}

/// Makes the segment end in a torn write: the first part of one more record after
/// the last complete one. This is what a power cut during the next `write` leaves:
/// that record's `fdatasync` never finished, so the member never acknowledged it to
/// anyone. With `keep_zeros` the torn record lies in the preallocated zeros, as this
/// WAL leaves it; without, the file ends in the middle of it, as after a crash while
/// the file grew. (Cutting a record that *was* synced would remove an entry the
/// leader already counted as stored here; Raft cannot work around that — etcd's raft
/// panics with "tocommit is out of range", raft-rs with "to_commit is out of range" —
/// so it is not a fault a member can be asked to survive.)
///
/// A disk writes whole sectors (512 bytes), so a torn record in the zeros is written
/// up to a sector boundary and zeros from there to its end: the torn record here
/// claims a length that reaches past the next boundary, and its bytes stop there.
pub fn tear_tail(segment: &Path, keep_zeros: bool) -> Result<String, String> {
    const SECTOR: usize = 512;
    let mut bytes = fs::read(segment).map_err(|e| format!("read {}: {e}", segment.display()))?;
    let all = records(&bytes);
    let &(offset, len) = all.last().ok_or("the segment holds no record")?;
    let end = offset + len;
    if bytes[end..].iter().any(|b| *b != 0) {
        return Err(format!(
            "{}: not only zeros after the last record",
            segment.display()
        ));
    }
    let size = bytes.len();
    // The torn record: the last record's kind and payload bytes, repeated, under a
    // header claiming more than reaches the next sector boundary (the CRC is the last
    // record's: it cannot match).
    let boundary = (end + HEADER).div_ceil(SECTOR) * SECTOR;
    let claimed = boundary - end - HEADER + SECTOR; // a sector more than is written
    let mut torn = Vec::with_capacity(boundary - end);
    torn.extend_from_slice(&(claimed as u32).to_le_bytes());
    torn.extend_from_slice(&bytes[offset + 4..offset + HEADER]);
    let payload = &bytes[offset + HEADER..end];
    while torn.len() < boundary - end {
        let want = (boundary - end - torn.len()).min(payload.len().max(1));
        torn.extend(
            payload
                .iter()
                .copied()
                .chain(std::iter::repeat(1))
                .take(want),
        );
    }
    let (written, after) = if keep_zeros {
        if bytes.len() < end + HEADER + claimed {
            // A segment cut short by an earlier repair: zeros, as its growth leaves.
            bytes.resize(end + HEADER + claimed + SECTOR, 0);
        }
        bytes[end..boundary].copy_from_slice(&torn);
        (torn.len(), "zeros from a sector boundary")
    } else {
        bytes.truncate(end);
        let half = (torn.len() / 2).max(HEADER + 1);
        bytes.extend_from_slice(&torn[..half]);
        (half, "the end of the file")
    };
    fs::write(segment, &bytes).map_err(|e| format!("write {}: {e}", segment.display()))?;
    Ok(format!(
        "{}: after record {}, {written} of {} bytes of a next record, then {after} ({size} -> {} bytes)",
        segment.display(),
        all.len(),
        HEADER + claimed,
        bytes.len()
    ))
}

/// Flips one byte in the payload of the middle record. Returns the damaged file's
/// bytes (to check that the member left them alone) and a description.
pub fn flip_middle_byte(segment: &Path) -> Result<(Vec<u8>, String), String> {
    let mut bytes = fs::read(segment).map_err(|e| format!("read {}: {e}", segment.display()))?;
    let all = records(&bytes);
    if all.len() < 3 {
        return Err(format!(
            "{} has only {} records",
            segment.display(),
            all.len()
        ));
    }
    let n = all.len() / 2;
    let (offset, len) = all[n];
    let at = offset + HEADER + (len - HEADER) / 2;
    bytes[at] ^= 0xff;
    fs::write(segment, &bytes).map_err(|e| format!("write {}: {e}", segment.display()))?;
    let what = format!(
        "{}: byte {at} flipped, in record {} of {}",
        segment.display(),
        n + 1,
        all.len()
    );
    Ok((bytes, what))
}

/// Copies a directory tree (a member's data directory, to restore it afterwards).
pub fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for entry in fs::read_dir(from).map_err(|e| format!("list {}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(|e| e.to_string())?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)
                .map_err(|e| format!("copy {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Replaces `dir` by the copy saved in `saved`.
pub fn restore_dir(saved: &Path, dir: &Path) -> Result<(), String> {
    fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    copy_dir(saved, dir)?;
    fs::remove_dir_all(saved).map_err(|e| format!("remove {}: {e}", saved.display()))
}
