//! Is a snapshot file whole? The checks `etcdutl snapshot restore` makes, done first and
//! explained: a saved snapshot is a bbolt file (a whole number of 512-byte blocks) followed by
//! the SHA-256 of those bytes, appended by the server.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What the check established.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Integrity {
    pub size_bytes: u64,
    /// SHA-256 of the whole file (what firedrill's upload metadata records).
    pub file_sha256: String,
    /// `true` when the file carries etcd's trailing SHA-256 and it matched.
    pub hash_verified: bool,
}

const BLOCK: u64 = 512;
const HASH_LEN: u64 = 32;

/// Checks `path`. `allow_missing_hash` accepts a raw bbolt copy without the trailer.
/// `Err` says, for a person, what is wrong with the file.
pub fn check(path: &Path, allow_missing_hash: bool) -> Result<Integrity, String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file.metadata().map_err(|e| e.to_string())?.len();
    let has_hash = size % BLOCK == HASH_LEN && size > HASH_LEN;
    if size == 0 {
        return Err("the snapshot file is empty".into());
    }
    if !has_hash && size % BLOCK != 0 {
        return Err(format!(
            "the snapshot is truncated or not an etcd snapshot: its size, {size} bytes, is neither a whole number of 512-byte blocks (a raw database) nor that plus the 32-byte SHA-256 that `etcdctl snapshot save` appends"
        ));
    }
    if !has_hash && !allow_missing_hash {
        return Err(format!(
            "the snapshot ({size} bytes) has no SHA-256 trailer, so its integrity cannot be checked: it is a raw database copy, not an `etcdctl snapshot save` file (set allowMissingHash: true to restore it anyway)"
        ));
    }
    let db_len = if has_hash { size - HASH_LEN } else { size };
    let mut db_hash = Sha256::new();
    let mut file_hash = Sha256::new();
    let mut remaining = db_len;
    let mut buf = vec![0u8; 1 << 20];
    while remaining > 0 {
        let want = remaining.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..want]).map_err(|e| format!("reading {}: {e}", path.display()))?;
        db_hash.update(&buf[..want]);
        file_hash.update(&buf[..want]);
        remaining -= want as u64;
    }
    let mut trailer = [0u8; HASH_LEN as usize];
    if has_hash {
        file.read_exact(&mut trailer).map_err(|e| format!("reading {}: {e}", path.display()))?;
        file_hash.update(trailer);
        let computed: [u8; 32] = db_hash.finalize().into();
        if computed != trailer {
            return Err(format!(
                "the snapshot is corrupted: its embedded SHA-256 is {} but its {db_len} bytes of data hash to {}",
                hex::encode(trailer),
                hex::encode(computed)
            ));
        }
    }
    Ok(Integrity { size_bytes: size, file_sha256: hex::encode(file_hash.finalize()), hash_verified: has_hash })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f
    }

    fn saved(db: &[u8]) -> Vec<u8> {
        let mut v = db.to_vec();
        v.extend_from_slice(&Sha256::digest(db));
        v
    }

    #[test]
    fn a_saved_snapshot_with_its_hash_passes() {
        let bytes = saved(&[7u8; 1024]);
        let i = check(write(&bytes).path(), false).unwrap();
        assert_eq!(
            i,
            Integrity { size_bytes: 1056, file_sha256: hex::encode(Sha256::digest(&bytes)), hash_verified: true }
        );
    }

    #[test]
    fn a_flipped_byte_is_a_checksum_mismatch() {
        let mut bytes = saved(&[7u8; 1024]);
        bytes[100] ^= 1;
        let e = check(write(&bytes).path(), false).unwrap_err();
        assert!(e.starts_with("the snapshot is corrupted: its embedded SHA-256 is"), "{e}");
    }

    #[test]
    fn a_truncated_file_is_named_as_such() {
        let bytes = saved(&[7u8; 1024]);
        let e = check(write(&bytes[..700]).path(), false).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        assert!(check(write(b"").path(), false).unwrap_err().contains("empty"));
    }

    #[test]
    fn a_raw_database_needs_permission() {
        let f = write(&[7u8; 1024]);
        assert!(check(f.path(), false).unwrap_err().contains("allowMissingHash"));
        assert!(!check(f.path(), true).unwrap().hash_verified);
    }
}
