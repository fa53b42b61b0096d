//! Content digests (`sha256:<hex>`, `sha512:<hex>`) and hashing while streaming.
//!
//! Only the canonical form is accepted: a registered algorithm, a colon, and exactly
//! the algorithm's length of lower-case hex. Anything else is rejected before it can
//! name a file.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;

use crate::error::{Error, ErrorKind, Result};

/// A digest algorithm cargohold accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512, accepted wherever a digest is read.
    Sha512,
}

impl Algorithm {
    /// The algorithm's name as it appears before the colon.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Number of hex characters in an encoded digest of this algorithm.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }

    /// Parse an algorithm name; unknown but well-formed names are `Unsupported`.
    pub fn parse(name: &str) -> Result<Algorithm> {
        match name {
            "sha256" => Ok(Algorithm::Sha256),
            "sha512" => Ok(Algorithm::Sha512),
            other if is_algorithm_grammar(other) => Err(Error::new(
                ErrorKind::Unsupported,
                "parse digest",
                other,
                "unsupported digest algorithm",
            )),
            other => Err(Error::new(
                ErrorKind::InvalidArgument,
                "parse digest",
                other,
                "malformed digest algorithm",
            )),
        }
    }

    /// A fresh hasher for this algorithm.
    pub fn hasher(self) -> Hasher {
        Hasher::new(self)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The OCI image-spec grammar for an algorithm: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_algorithm_grammar(s: &str) -> bool {
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// A validated content digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parse `algorithm:hex`, rejecting unknown algorithms, wrong lengths, upper-case or
    /// non-hex characters and empty input with a typed error.
    pub fn parse(s: &str) -> Result<Digest> {
        let invalid =
            |why: &str| Error::new(ErrorKind::InvalidArgument, "parse digest", shorten(s), why);
        if s.is_empty() {
            return Err(invalid("empty digest"));
        }
        let (alg, hex) = s.split_once(':').ok_or_else(|| invalid("missing ':'"))?;
        let algorithm = Algorithm::parse(alg)?;
        if hex.len() != algorithm.hex_len() {
            return Err(invalid("wrong digest length"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid("digest must be lower-case hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// Build a digest from an algorithm and raw hash bytes.
    pub fn from_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<Digest> {
        if bytes.len() * 2 != algorithm.hex_len() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "digest from bytes",
                algorithm,
                "wrong hash length",
            ));
        }
        Ok(Digest {
            algorithm,
            hex: hex::encode(bytes),
        })
    }

    /// The digest of `data` with `algorithm`.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    /// The sha256 digest of `data`.
    pub fn sha256(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The encoded hash, lower-case hex.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Fail with `DigestMismatch` unless `actual` equals `self`.
    pub fn verify(&self, op: &'static str, actual: &Digest) -> Result<()> {
        if self == actual {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::DigestMismatch,
                op,
                self,
                format!("content hashes to {actual}"),
            ))
        }
    }
}

fn shorten(s: &str) -> String {
    if s.len() <= 140 {
        s.to_owned()
    } else {
        let mut end = 140;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one [`Algorithm`].
#[derive(Clone)]
pub enum Hasher {
    /// SHA-256 state.
    Sha256(sha2::Sha256),
    /// SHA-512 state.
    Sha512(sha2::Sha512),
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hasher({})", self.algorithm())
    }
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            Hasher::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest { algorithm, hex }
    }
}

/// A writer that hashes and counts everything written through it.
#[derive(Debug)]
pub struct DigestWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> DigestWriter<W> {
    /// Wrap `inner`, hashing with `algorithm`.
    pub fn new(inner: W, algorithm: Algorithm) -> Self {
        DigestWriter {
            inner,
            hasher: Hasher::new(algorithm),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }
}

impl<W: Write> Write for DigestWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
#[derive(Debug)]
pub struct DigestReader<R> {
    inner: R,
    hasher: Hasher,
    len: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wrap `inner`, hashing with `algorithm`.
    pub fn new(inner: R, algorithm: Algorithm) -> Self {
        DigestReader {
            inner,
            hasher: Hasher::new(algorithm),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when nothing was read.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of what was read so far and the byte count.
    pub fn digest(&self) -> (Digest, u64) {
        (self.hasher.clone().finish(), self.len)
    }

    /// The inner reader, the digest and the byte count.
    pub fn finish(self) -> (R, Digest, u64) {
        (self.inner, self.hasher.finish(), self.len)
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Read `reader` to its end and return its digest and length.
pub fn digest_reader(mut reader: impl Read, algorithm: Algorithm) -> Result<(Digest, u64)> {
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("hash", algorithm, e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher.finish(), len))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_formats_canonical_digests() {
        let d = Digest::parse(EMPTY256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY256);
        let d512 = Digest::of(Algorithm::Sha512, b"");
        assert_eq!(Digest::parse(&d512.to_string()).unwrap(), d512);
        assert!(d512.to_string().starts_with("sha512:cf83e135"));
    }

    #[test]
    fn rejects_bad_digests_with_typed_errors() {
        let cases = [
            ("", ErrorKind::InvalidArgument),
            ("sha256", ErrorKind::InvalidArgument),
            ("sha256:", ErrorKind::InvalidArgument),
            (":abc", ErrorKind::InvalidArgument),
            ("sha256:abc", ErrorKind::InvalidArgument),
            (
                &EMPTY256.to_uppercase().replace("SHA256", "sha256"),
                ErrorKind::InvalidArgument,
            ),
            (&format!("{EMPTY256}0"), ErrorKind::InvalidArgument),
            (&EMPTY256.replace('e', "g"), ErrorKind::InvalidArgument),
            (
                "md5:d41d8cd98f00b204e9800998ecf8427e",
                ErrorKind::Unsupported,
            ),
            ("SHA256:e3b0", ErrorKind::InvalidArgument),
            ("sha256:../../../../etc/passwd", ErrorKind::InvalidArgument),
        ];
        for (input, kind) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.kind(), kind, "input {input:?}");
        }
    }

    #[test]
    fn writer_and_reader_hash_while_streaming() {
        let data = vec![7u8; 3 * 1024 * 1024 + 11];
        let mut w = DigestWriter::new(Vec::new(), Algorithm::Sha256);
        for chunk in data.chunks(4096 + 3) {
            w.write_all(chunk).unwrap();
        }
        let (out, d, n) = w.finish();
        assert_eq!(out, data);
        assert_eq!(n, data.len() as u64);
        assert_eq!(d, Digest::sha256(&data));

        let mut r = DigestReader::new(&data[..], Algorithm::Sha512);
        let mut sink = Vec::new();
        r.read_to_end(&mut sink).unwrap();
        let (_, d2, n2) = r.finish();
        assert_eq!(n2, data.len() as u64);
        assert_eq!(d2, Digest::of(Algorithm::Sha512, &data));
        assert_eq!(digest_reader(&data[..], Algorithm::Sha256).unwrap().0, d);
    }

    #[test]
    fn verify_reports_mismatch() {
        let expected = Digest::sha256(b"a");
        let actual = Digest::sha256(b"b");
        assert_eq!(
            expected.verify("x", &actual).unwrap_err().kind(),
            ErrorKind::DigestMismatch
        );
        expected.verify("x", &expected.clone()).unwrap();
    }

    #[test]
    fn serde_round_trip_and_rejection() {
        let d = Digest::sha256(b"hello");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"sha256:xyz\"").is_err());
    }

    #[test]
    fn from_bytes_checks_length() {
        assert_eq!(
            Digest::from_bytes(Algorithm::Sha256, &[0u8; 31])
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
        let d = Digest::from_bytes(Algorithm::Sha256, &[0u8; 32]).unwrap();
        assert_eq!(d.hex(), "0".repeat(64));
    }
}
