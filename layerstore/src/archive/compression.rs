//! Compression of a layer stream, detected by its magic bytes.

use std::io::{BufRead, BufReader, Read};

use cargohold_core::{Error, ErrorKind, Result};

/// How a layer stream is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip, one or more members (pigz writes several).
    Gzip,
    /// zstd, one or more frames.
    Zstd,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

impl Compression {
    /// Detect from the first bytes of a stream; anything else is taken as a plain tar.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(GZIP_MAGIC) {
            Compression::Gzip
        } else if head.starts_with(ZSTD_MAGIC) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Detect the compression of `reader` and return a reader of the uncompressed bytes.
pub fn decompressor<'a>(
    reader: impl Read + Send + 'a,
) -> Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut buffered = BufReader::with_capacity(1 << 17, reader);
    let head = buffered
        .fill_buf()
        .map_err(|e| Error::io("decompress", "layer", e))?;
    let kind = Compression::detect(head);
    let out: Box<dyn Read + Send + 'a> = match kind {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            zstd::Decoder::with_buffer(buffered)
                .map_err(|e| Error::io("decompress", "zstd", e).with_kind(ErrorKind::Corrupt))?,
        ),
    };
    Ok((kind, out))
}
