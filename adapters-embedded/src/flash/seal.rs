//! Encryption at rest (feature `encryption`): ChaCha20-Poly1305 (RFC 8439)
//! over each event's payload, streamed.
//!
//! Why streamed: records are written and read through small stack buffers
//! (no allocation, a payload may be larger than any buffer), so the AEAD is
//! built from its two halves, the `chacha20` stream cipher and the
//! `poly1305` MAC, exactly as RFC 8439 section 2.8 composes them (a test
//! checks the bytes against the `chacha20poly1305` crate). The output is
//! the standard AEAD: ciphertext, then the 16-byte tag.
//!
//! The nonce of a record is the queue's 96-bit salt XOR (its number, u64
//! little-endian, then its byte offset in its page, u16 little-endian,
//! then the low 16 bits of its page's lap, u16 little-endian). The packing
//! is injective: a sealed queue's pages are at most 64 KiB (open refuses
//! larger ones, `GeometryError::PageTooLarge`), so every offset fits its
//! 16 bits. A salt lasts as long as the queue has a page in use (a queue
//! formatted again takes a new salt, and its laps start again at 0), and
//! under one salt:
//! - a number is stored again at the same place of the same page never:
//!   the newest appended again lands at a later offset;
//! - a number may be handed out again after a power cut tore its record
//!   before its CRC (a torn record does not count; its ciphertext, maybe
//!   its tag, is on flash), and the retry may land at the same offset, but
//!   of another page: a page opened later, whose lap is higher.
//!
//! So two records share a nonce only if one number is torn and retried
//! over 65 536 page openings in a row (the lap's low 16 bits come round
//! again), each retry cut by a power loss before its CRC: the residual
//! reuse. The associated data is the number, so a record moved or
//! renumbered fails its tag.

use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use chacha20::ChaCha20;
use poly1305::universal_hash::{KeyInit, UniversalHash};
use poly1305::Poly1305;

use outbox_core::Seq;

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes of a queue's salt.
pub const SALT_LEN: usize = 12;
/// Bytes of the tag each sealed record adds to its payload.
pub const TAG_LEN: usize = 16;
/// A chunk of the payload: the MAC takes whole 16-byte blocks but the last.
pub(crate) const CHUNK: usize = 64;

/// The associated data of the key check value.
const CHECK_AD: &[u8] = b"outbox flash key check";

/// The key and the queue's salt.
#[derive(Clone, Copy)]
pub(crate) struct Keys {
    pub key: [u8; KEY_LEN],
    pub salt: [u8; SALT_LEN],
}

impl core::fmt::Debug for Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keys")
            .field("salt", &self.salt)
            .finish_non_exhaustive()
    }
}

impl Keys {
    /// The nonce of record `seq` at byte `off` of its page, whose lap is
    /// `lap` (`off` < 64 KiB: the geometry of a sealed queue ensures it;
    /// the lap's low 16 bits are taken).
    pub fn nonce(&self, seq: Seq, off: u32, lap: u32) -> [u8; 12] {
        let mut n = self.salt;
        let (off, lap) = ((off as u16).to_le_bytes(), (lap as u16).to_le_bytes());
        for (b, x) in n
            .iter_mut()
            .zip(seq.to_le_bytes().into_iter().chain(off).chain(lap))
        {
            *b ^= x;
        }
        n
    }

    /// The key check value written with the salt: the tag of an empty
    /// message under a nonce no record has (offset `0xFFFF` is odd, and
    /// every record starts at a multiple of 4). It tells a wrong key at
    /// open.
    pub fn check(&self) -> [u8; TAG_LEN] {
        Sealer::with_nonce(
            &self.key,
            self.nonce(Seq::MAX, u32::MAX, u32::MAX),
            CHECK_AD,
        )
        .tag()
    }

    /// A salt for the `n`-th format (n >= 1) of a queue in one session:
    /// ChaCha20's keystream under the caller's salt, far past any record's
    /// blocks (the caller gives one fresh salt per open).
    pub fn derived_salt(&self, n: u32) -> [u8; SALT_LEN] {
        let mut c = ChaCha20::new(&self.key.into(), &self.salt.into());
        c.seek(u64::from(u32::MAX - n) * 64);
        let mut s = [0u8; SALT_LEN];
        c.apply_keystream(&mut s);
        s
    }
}

/// One record's AEAD state, fed the payload in [`CHUNK`]s.
pub(crate) struct Sealer {
    cipher: ChaCha20,
    mac: Poly1305,
    ad_len: u64,
    ct_len: u64,
}

impl Sealer {
    /// For record `seq` at byte `off` of its page, of lap `lap`.
    pub fn new(keys: &Keys, seq: Seq, off: u32, lap: u32) -> Self {
        Self::with_nonce(&keys.key, keys.nonce(seq, off, lap), &seq.to_le_bytes())
    }

    fn with_nonce(key: &[u8; KEY_LEN], nonce: [u8; 12], ad: &[u8]) -> Self {
        let mut cipher = ChaCha20::new(&(*key).into(), &nonce.into());
        let mut mac_key = [0u8; 32];
        cipher.apply_keystream(&mut mac_key);
        let mut mac = Poly1305::new(&mac_key.into());
        cipher.seek(64u64);
        mac.update_padded(ad);
        Sealer {
            cipher,
            mac,
            ad_len: ad.len() as u64,
            ct_len: 0,
        }
    }

    /// Encrypt a chunk in place and take it into the tag.
    pub fn seal(&mut self, chunk: &mut [u8]) {
        self.cipher.apply_keystream(chunk);
        self.absorb(chunk);
    }

    /// Take a chunk of ciphertext into the tag (a multiple of 16 bytes
    /// long, but the last).
    pub fn absorb(&mut self, ct: &[u8]) {
        self.mac.update_padded(ct);
        self.ct_len += ct.len() as u64;
    }

    /// Decrypt (the tag is checked by the walk, before any read).
    pub fn open(mut self, ct: &mut [u8]) {
        self.cipher.apply_keystream(ct);
    }

    /// The tag of everything absorbed.
    pub fn tag(mut self) -> [u8; TAG_LEN] {
        self.mac.update(&[self.lengths()]);
        self.mac.finalize().into()
    }

    /// Whether `tag` is the tag of everything absorbed (in constant time).
    pub fn verify(mut self, tag: &[u8; TAG_LEN]) -> bool {
        self.mac.update(&[self.lengths()]);
        self.mac.verify(&(*tag).into()).is_ok()
    }

    fn lengths(&self) -> poly1305::Block {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.ad_len.to_le_bytes());
        b[8..].copy_from_slice(&self.ct_len.to_le_bytes());
        b.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chacha20poly1305::aead::AeadInOut;
    use chacha20poly1305::ChaCha20Poly1305;

    /// The streamed AEAD is RFC 8439's, byte for byte, for any length.
    #[test]
    fn sealing_in_chunks_is_chacha20_poly1305() {
        let keys = Keys {
            key: [7; 32],
            salt: [0xA5; 12],
        };
        let aead = ChaCha20Poly1305::new(&keys.key.into());
        for len in [0usize, 1, 15, 16, 63, 64, 65, 200, 1000] {
            let mut buf = [0u8; 1000];
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (i * 31 + 5) as u8;
            }
            let plain = &buf[..len];
            let (seq, off) = (1 << 40 | len as u64, 52);
            let mut ours_buf = buf;
            let ours = &mut ours_buf[..len];
            let mut s = Sealer::new(&keys, seq, off, 3);
            for c in ours.chunks_mut(CHUNK) {
                s.seal(c);
            }
            let tag = s.tag();
            let mut theirs_buf = buf;
            let theirs = &mut theirs_buf[..len];
            let nonce = keys.nonce(seq, off, 3);
            let t = aead
                .encrypt_inout_detached(&nonce.into(), &seq.to_le_bytes(), (&mut *theirs).into())
                .unwrap();
            assert_eq!(ours, theirs, "{len} bytes");
            assert_eq!(tag, <[u8; 16]>::from(t), "{len} bytes");
            let mut v = Sealer::new(&keys, seq, off, 3);
            v.absorb(ours);
            assert!(v.verify(&tag));
            Sealer::new(&keys, seq, off, 3).open(ours);
            assert_eq!(ours, plain);
        }
    }

    #[test]
    fn the_nonce_takes_the_number_the_offset_and_the_lap() {
        let keys = Keys {
            key: [0; 32],
            salt: [0; 12],
        };
        assert_eq!(
            keys.nonce(1, 0x0302, 0x0605_0504),
            [1, 0, 0, 0, 0, 0, 0, 0, 2, 3, 4, 5]
        );
        assert_ne!(
            keys.check(),
            Keys {
                key: [1; 32],
                ..keys
            }
            .check()
        );
        assert_ne!(keys.derived_salt(1), keys.derived_salt(2));
    }
}
