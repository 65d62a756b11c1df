//! Telling an encrypted database from a damaged one.
//!
//! SQLite says "not a database" alike for bytes that are not SQLite, for a
//! SQLCipher file opened without its key or with a wrong one, and for a
//! plaintext file opened with a key. Only the first is damage, which the
//! Client salvages (moving the file aside); the others are a key problem,
//! and the file must stay exactly where and as it is. So before a "not a
//! database" is believed, the file's first bytes are looked at:
//!
//! - opened **with** a key: a file that starts with SQLite's plaintext
//!   header is [`OpenError::NotEncrypted`]; anything else is
//!   [`OpenError::WrongKey`] (a first page that does not decrypt cannot be
//!   told from a damaged one, and refusing keeps the file);
//! - opened **without** a key: a file whose first bytes look random (as
//!   every SQLCipher file's do: a random salt, then ciphertext) is
//!   [`OpenError::KeyRequired`]; text, zeros or other structured bytes
//!   stay [`OpenError::NotADatabase`], which the Client salvages.

use std::io::Read;
use std::path::Path;

use super::error::OpenError;

/// The first 16 bytes of every plaintext SQLite database.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Bytes looked at: SQLCipher's smallest page.
const SAMPLE: usize = 512;

/// Distinct byte values among [`SAMPLE`] random bytes: about 221 (the
/// chance of fewer than 160 is far below 1e-20); English text has under
/// 100, and a file of one repeated byte has 1.
const RANDOM_DISTINCT: usize = 160;

/// What a "not a database" from a connection opened with (`keyed`) or
/// without a key really means; other errors pass through.
pub(crate) fn refine(e: OpenError, keyed: bool) -> OpenError {
    let OpenError::NotADatabase { path } = e else {
        return e;
    };
    let head = first_bytes(&path);
    if keyed {
        if head.starts_with(SQLITE_HEADER) {
            OpenError::NotEncrypted { path }
        } else {
            OpenError::WrongKey { path }
        }
    } else if looks_random(&head) {
        OpenError::KeyRequired { path }
    } else {
        OpenError::NotADatabase { path }
    }
}

/// Up to [`SAMPLE`] bytes from the start of `path` (none when unreadable).
fn first_bytes(path: &Path) -> Vec<u8> {
    let mut head = Vec::with_capacity(SAMPLE);
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(SAMPLE as u64).read_to_end(&mut head);
    }
    head
}

/// A full sample with as many distinct byte values as random bytes have.
fn looks_random(head: &[u8]) -> bool {
    if head.len() < SAMPLE || head.starts_with(SQLITE_HEADER) {
        return false;
    }
    let mut seen = [false; 256];
    for &b in head {
        seen[usize::from(b)] = true;
    }
    seen.iter().filter(|&&s| s).count() >= RANDOM_DISTINCT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_look_random_and_text_or_repeats_do_not() {
        // A fixed xorshift stream stands in for ciphertext.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let random: Vec<u8> = (0..SAMPLE)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        assert!(looks_random(&random));
        assert!(!looks_random(&random[..SAMPLE - 1]), "too short to judge");
        let text = "these are my notes, not a database\n".repeat(20);
        assert!(!looks_random(text.as_bytes()));
        assert!(!looks_random(&[0x42; SAMPLE]));
        let mut sqlite = SQLITE_HEADER.to_vec();
        sqlite.extend_from_slice(&random[16..]);
        assert!(!looks_random(&sqlite));
    }
}
