//! A resumable SHA-256 whose state is Go's marshalled `crypto/sha256` state, the format
//! registry:2 stores under `_uploads/<id>/hashstates/sha256/<offset>`.
//!
//! The format (108 bytes): magic `"sha\x03"`, the eight state words as big-endian u32,
//! the 64-byte block buffer (the `len % 64` pending bytes, then zeros), and the total
//! length as a big-endian u64.

use cargohold_core::{Digest, Error, ErrorKind, Result};
use sha2::digest::block_buffer::{BlockBuffer, Eager};
use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;

const MAGIC: &[u8; 4] = b"sha\x03";
/// Size of a marshalled state.
pub const MARSHALED_LEN: usize = 4 + 32 + 64 + 8;
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256 that can be saved and restored at any byte.
#[derive(Clone, Debug)]
pub struct ResumableSha256 {
    state: [u32; 8],
    block: [u8; 64],
    pending: usize,
    len: u64,
}

impl Default for ResumableSha256 {
    fn default() -> Self {
        ResumableSha256::new()
    }
}

impl ResumableSha256 {
    /// A fresh hash.
    pub fn new() -> ResumableSha256 {
        ResumableSha256 {
            state: IV,
            block: [0; 64],
            pending: 0,
            len: 0,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hash `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.pending > 0 {
            let take = (64 - self.pending).min(data.len());
            self.block[self.pending..self.pending + take].copy_from_slice(&data[..take]);
            self.pending += take;
            data = &data[take..];
            if self.pending < 64 {
                return;
            }
            sha2::compress256(&mut self.state, &[*GenericArray::from_slice(&self.block)]);
            self.pending = 0;
        }
        let whole = data.len() / 64 * 64;
        if whole > 0 {
            // All whole blocks in one call, in place: an empty eager block buffer
            // hands them to compress as a slice of blocks without copying them.
            let mut blocks = BlockBuffer::<U64, Eager>::default();
            blocks.digest_blocks(&data[..whole], |b| sha2::compress256(&mut self.state, b));
        }
        let rest = &data[whole..];
        self.block[..rest.len()].copy_from_slice(rest);
        self.pending = rest.len();
    }

    /// The digest of everything hashed (the state is kept).
    pub fn digest(&self) -> Digest {
        let mut h = self.clone();
        let bits = h.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        let fill = (64 + 56 - (h.pending + 1) % 64) % 64;
        pad.extend(std::iter::repeat_n(0u8, fill));
        pad.extend_from_slice(&bits.to_be_bytes());
        let len = h.len;
        h.update(&pad);
        h.len = len;
        debug_assert_eq!(h.pending, 0);
        let mut out = [0u8; 32];
        for (i, w) in h.state.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&w.to_be_bytes());
        }
        Digest::from_bytes(cargohold_core::Algorithm::Sha256, &out)
            .expect("32 bytes are a sha256 digest")
    }

    /// Go's marshalled form of the state.
    pub fn marshal(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(MARSHALED_LEN);
        out.extend_from_slice(MAGIC);
        for w in self.state {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out.extend_from_slice(&self.block[..self.pending]);
        out.resize(4 + 32 + 64, 0);
        out.extend_from_slice(&self.len.to_be_bytes());
        out
    }

    /// Restore a state written by [`ResumableSha256::marshal`] or by Go.
    pub fn unmarshal(b: &[u8]) -> Result<ResumableSha256> {
        let bad = |why: &str| Error::new(ErrorKind::Corrupt, "hashstate", "sha256", why);
        if b.len() != MARSHALED_LEN {
            return Err(bad("a sha256 state is 108 bytes"));
        }
        if &b[..4] != MAGIC {
            return Err(bad("not a marshalled sha256 state"));
        }
        let mut state = [0u32; 8];
        for (i, w) in state.iter_mut().enumerate() {
            *w = u32::from_be_bytes(b[4 + i * 4..8 + i * 4].try_into().expect("4 bytes"));
        }
        let len = u64::from_be_bytes(b[100..108].try_into().expect("8 bytes"));
        let mut block = [0u8; 64];
        block.copy_from_slice(&b[36..100]);
        let pending = (len % 64) as usize;
        if block[pending..].iter().any(|&x| x != 0) {
            return Err(bad("bytes beyond the pending block"));
        }
        Ok(ResumableSha256 {
            state,
            block,
            pending,
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    #[test]
    fn matches_sha2_at_every_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0usize, 1, 55, 56, 63, 64, 65, 119, 128, 999] {
            let want = hex::encode(sha2::Sha256::digest(&data[..len]));
            for split in [0, len / 3, len] {
                let mut h = ResumableSha256::new();
                h.update(&data[..split]);
                let mut h = ResumableSha256::unmarshal(&h.marshal()).unwrap();
                h.update(&data[split..len]);
                assert_eq!(h.digest().hex(), want, "len {len} split {split}");
                assert_eq!(h.len(), len as u64);
            }
        }
    }

    #[test]
    fn bad_states_are_corrupt() {
        assert_eq!(
            ResumableSha256::unmarshal(&[0; 10]).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let mut m = ResumableSha256::new().marshal();
        m[0] = b'x';
        assert_eq!(
            ResumableSha256::unmarshal(&m).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
    }
}
