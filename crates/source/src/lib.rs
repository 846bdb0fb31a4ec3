//! Where events come from, each payload with its position: NDJSON files, and
//! Kafka topics read by a consumer group ([`kafka`]), whose dead letters it also
//! produces.
//!
//! This crate reads bytes and says where they were; it does not parse or
//! validate events (the schema crate does) and does not write the warehouse:
//! where a Kafka partition resumes is asked of the caller.
//!
//! Files may be gzip- or zstd-compressed ([`Compression`], recognised by their first bytes, not their
//! names); positions are then offsets in the decompressed lines. A UTF-8 byte-order mark at the start of a
//! file is skipped.
//!
//! ```
//! use std::io::Write;
//! use permitflow_source::{NdjsonFile, Line};
//!
//! let mut file = tempfile::NamedTempFile::new()?;
//! file.write_all(b"{\"a\":1}\n\n{\"b\":2}\r\n")?;
//! let mut reader = NdjsonFile::open(file.path())?.reader_from(0, 1)?;
//! let mut seen = Vec::new();
//! while let Some(line) = reader.next_line()? {
//!     if let Line::Event { number, bytes, .. } = line {
//!         seen.push((number, String::from_utf8_lossy(bytes).into_owned()));
//!     }
//! }
//! assert_eq!(seen, [(1, "{\"a\":1}".to_string()), (3, "{\"b\":2}".to_string())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod kafka;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// Longest line kept in memory; longer lines are reported as [`Line::TooLong`] (1 MiB, the contract's limit).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Read buffer size.
const BUFFER_BYTES: usize = 1 << 20;
/// The UTF-8 byte-order mark some Windows tools write at the start of a text file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Errors reading a source; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A Kafka client call failed.
    #[error("Kafka, {context}: {source}")]
    Kafka {
        /// What was being done.
        context: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
    /// Dead letters were not acknowledged by the brokers.
    #[error(
        "{failed} dead letter(s) were not acknowledged; check that the dead-letter topics (`<topic>{suffix}`) \
         exist and the brokers are reachable; the batch stays uncommitted and is retried"
    )]
    DeadLettersNotDelivered {
        /// How many failed.
        failed: u64,
        /// The dead-letter suffix in use.
        suffix: String,
    },
    /// The Kafka configuration is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// A compressed file cannot be decompressed.
    #[error(
        "{path}: not a readable {compression} stream after {at_byte} decompressed bytes ({source}); the file \
         is damaged or truncated: compress it again from the original, or give the uncompressed file"
    )]
    Decompress {
        /// The file.
        path: PathBuf,
        /// Its compression, from its first bytes.
        compression: Compression,
        /// Decompressed bytes read before the failure.
        at_byte: u64,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// A resumed read starts beyond the end of the (decompressed) content.
    #[error(
        "{path}: shorter than the position {at_byte} committed for a file with its content hash; \
         the content changed while it was read"
    )]
    Truncated {
        /// The file.
        path: PathBuf,
        /// The committed position.
        at_byte: u64,
    },
    /// The path is a directory without NDJSON files or not a regular file.
    #[error("{path}: {message}")]
    NotAnInput {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
}

impl SourceError {
    pub(crate) fn kafka(context: impl Into<String>, source: rdkafka::error::KafkaError) -> SourceError {
        SourceError::Kafka { context: context.into(), source }
    }
}

/// How a file's bytes are encoded, recognised by its first bytes (a `.ndjson.gz` is read as gzip whatever
/// its name says, and so is a gzip file named `.ndjson`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Plain text.
    None,
    /// gzip (RFC 1952; several members are read one after the other, as `cat a.gz b.gz` makes).
    Gzip,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// The compression a file starting with `head` uses.
    pub fn of(head: &[u8]) -> Compression {
        match head {
            [0x1f, 0x8b, ..] => Compression::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Compression::Zstd,
            _ => Compression::None,
        }
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

/// An NDJSON file identified by its content hash.
#[derive(Debug, Clone)]
pub struct NdjsonFile {
    /// Path as given.
    pub path: PathBuf,
    /// SHA-256 of the content as stored (compressed, if it is), hex.
    pub sha256: String,
    /// Size in bytes as stored.
    pub size: u64,
    /// Its compression.
    pub compression: Compression,
}

impl NdjsonFile {
    /// Opens a file and hashes its content.
    pub fn open(path: impl AsRef<Path>) -> Result<NdjsonFile, SourceError> {
        let path = path.as_ref().to_path_buf();
        let io = |source| SourceError::Io { path: path.clone(), source };
        let mut file = File::open(&path).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; BUFFER_BYTES];
        let mut size = 0u64;
        let mut head = Vec::with_capacity(4);
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            if head.len() < 4 {
                head.extend(buf[..n].iter().take(4 - head.len()));
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(NdjsonFile { path, sha256: hex::encode(hasher.finalize()), size, compression: Compression::of(&head) })
    }

    /// A line reader starting at `byte` (a line start in the decompressed content) with line number `line`.
    ///
    /// A compressed file is decompressed from its start up to `byte`. At the start of a file a UTF-8
    /// byte-order mark is skipped (it counts as bytes, not as a line).
    pub fn reader_from(&self, byte: u64, line: u64) -> Result<LineReader, SourceError> {
        let io = |source| SourceError::Io { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(io)?;
        let stored = Arc::new(AtomicU64::new(0));
        let decoded: Box<dyn Read + Send> = match self.compression {
            Compression::None => {
                file.seek(SeekFrom::Start(byte)).map_err(io)?;
                Box::new(file)
            }
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(Counting {
                inner: file,
                read: Arc::clone(&stored),
            }))),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::new(Counting { inner: file, read: Arc::clone(&stored) }).map_err(io)?,
            ),
        };
        let mut reader = LineReader {
            path: self.path.clone(),
            compression: self.compression,
            stored,
            reader: BufReader::with_capacity(BUFFER_BYTES, decoded),
            buf: Vec::new(),
            byte: 0,
            next_line: line,
        };
        if self.compression == Compression::None {
            reader.byte = byte;
        } else {
            let skipped = std::io::copy(&mut (&mut reader.reader).take(byte), &mut std::io::sink());
            let skipped = skipped.map_err(|source| reader.read_error(source))?;
            if skipped < byte {
                return Err(SourceError::Truncated { path: self.path.clone(), at_byte: byte });
            }
            reader.byte = byte;
        }
        if byte == 0 {
            let bom = match reader.reader.fill_buf() {
                Ok(head) => head.starts_with(UTF8_BOM),
                Err(source) => return Err(reader.read_error(source)),
            };
            if bom {
                reader.reader.consume(UTF8_BOM.len());
                reader.byte = UTF8_BOM.len() as u64;
            }
        }
        Ok(reader)
    }
}

/// Counts the bytes read from a compressed file.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// True for the names a directory's input files have: `*.ndjson` and `*.jsonl`, also with `.gz`, `.zst`
/// or `.zstd` after them.
fn is_input_name(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let name = [".gz", ".zst", ".zstd"].iter().find_map(|c| name.strip_suffix(c)).unwrap_or(name);
    name.ends_with(".ndjson") || name.ends_with(".jsonl")
}

/// Expands files and directories into the NDJSON files to read, sorted by path.
///
/// Directories contribute their `*.ndjson` and `*.jsonl` files, compressed ones (`*.ndjson.gz`,
/// `*.jsonl.zst`, …) too, not recursively.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| SourceError::Io { path: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| is_input_name(p))
                .collect();
            if found.is_empty() {
                return Err(SourceError::NotAnInput {
                    path: path.clone(),
                    message: "directory has no *.ndjson or *.jsonl files (nor .gz or .zst ones)".into(),
                });
            }
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// One line of input.
#[derive(Debug, PartialEq)]
pub enum Line<'a> {
    /// A non-empty line (without its `\n` or `\r\n`).
    Event {
        /// Line number, from 1.
        number: u64,
        /// Byte offset of the line start.
        byte: u64,
        /// The line's bytes.
        bytes: &'a [u8],
    },
    /// An empty or whitespace-only line; not an event, skipped.
    Blank {
        /// Line number.
        number: u64,
    },
    /// A line longer than [`MAX_LINE_BYTES`]; its bytes were skipped, not kept.
    TooLong {
        /// Line number.
        number: u64,
        /// Byte offset of the line start.
        byte: u64,
        /// Its length in bytes.
        len: u64,
    },
}

/// Reads lines with their positions, in bounded memory.
pub struct LineReader {
    path: PathBuf,
    compression: Compression,
    /// Bytes of a compressed file read from disk so far (progress; unused for plain files).
    stored: Arc<AtomicU64>,
    reader: BufReader<Box<dyn Read + Send>>,
    buf: Vec<u8>,
    byte: u64,
    next_line: u64,
}

impl LineReader {
    fn read_error(&self, source: std::io::Error) -> SourceError {
        match self.compression {
            Compression::None => SourceError::Io { path: self.path.clone(), source },
            compression => SourceError::Decompress { path: self.path.clone(), compression, at_byte: self.byte, source },
        }
    }

    /// Byte offset of the next unread line: where a resumed read starts.
    pub fn position(&self) -> u64 {
        self.byte
    }

    /// How far into the file as stored the reader is, for progress against [`NdjsonFile::size`]: the byte
    /// position for a plain file, the compressed bytes read so far for a compressed one.
    pub fn stored_position(&self) -> u64 {
        match self.compression {
            Compression::None => self.byte,
            _ => self.stored.load(Ordering::Relaxed),
        }
    }

    /// True when no byte is left to read.
    pub fn at_end(&mut self) -> Result<bool, SourceError> {
        match self.reader.fill_buf() {
            Ok(rest) => Ok(rest.is_empty()),
            Err(source) => Err(self.read_error(source)),
        }
    }

    /// Line number of the next unread line.
    pub fn next_line_number(&self) -> u64 {
        self.next_line
    }

    /// The next line, or `None` at end of file.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, SourceError> {
        self.buf.clear();
        let start = self.byte;
        let number = self.next_line;
        let mut len = 0u64;
        let mut ended = false;
        loop {
            let available = match self.reader.fill_buf() {
                Ok(available) => available,
                Err(source) => return Err(self.read_error(source)),
            };
            if available.is_empty() {
                break;
            }
            let (chunk, consumed, newline) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            len += chunk.len() as u64;
            if len <= MAX_LINE_BYTES as u64 + 1 {
                self.buf.extend_from_slice(chunk);
            }
            self.reader.consume(consumed);
            self.byte += consumed as u64;
            if newline {
                ended = true;
                break;
            }
        }
        if len == 0 && !ended {
            return Ok(None);
        }
        self.next_line += 1;
        if self.buf.last() == Some(&b'\r') {
            self.buf.pop();
            len -= 1;
        }
        if len > MAX_LINE_BYTES as u64 {
            return Ok(Some(Line::TooLong { number, byte: start, len }));
        }
        if self.buf.iter().all(u8::is_ascii_whitespace) {
            return Ok(Some(Line::Blank { number }));
        }
        Ok(Some(Line::Event { number, byte: start, bytes: &self.buf }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write");
        f
    }

    fn events(reader: &mut LineReader) -> Vec<(u64, u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().expect("read") {
            if let Line::Event { number, byte, bytes } = line {
                out.push((number, byte, bytes.to_vec()));
            }
        }
        out
    }

    #[test]
    fn resumed_reader_continues_at_the_committed_line() {
        let f = file_with(b"a\nbb\nccc\n");
        let file = NdjsonFile::open(f.path()).expect("open");
        let mut reader = file.reader_from(0, 1).expect("reader");
        assert!(matches!(reader.next_line().expect("read"), Some(Line::Event { number: 1, .. })));
        let (byte, line) = (reader.position(), reader.next_line_number());
        assert_eq!((byte, line), (2, 2));
        let rest = events(&mut file.reader_from(byte, line).expect("reader"));
        assert_eq!(rest, vec![(2, 2, b"bb".to_vec()), (3, 5, b"ccc".to_vec())]);
    }

    #[test]
    fn last_line_without_newline_is_read() {
        let f = file_with(b"x\ny");
        let got = events(&mut NdjsonFile::open(f.path()).expect("open").reader_from(0, 1).expect("reader"));
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].2, b"y");
    }

    #[test]
    fn oversized_line_is_reported_not_kept() {
        let mut content = vec![b'x'; MAX_LINE_BYTES + 10];
        content.extend_from_slice(b"\nok\n");
        let f = file_with(&content);
        let file = NdjsonFile::open(f.path()).expect("open");
        let mut reader = file.reader_from(0, 1).expect("reader");
        match reader.next_line().expect("read") {
            Some(Line::TooLong { number: 1, byte: 0, len }) => assert_eq!(len, MAX_LINE_BYTES as u64 + 10),
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(matches!(reader.next_line().expect("read"), Some(Line::Event { number: 2, bytes: b"ok", .. })));
    }

    #[test]
    fn same_content_same_hash_different_content_different_hash() {
        let (a, b, c) = (file_with(b"same\n"), file_with(b"same\n"), file_with(b"other\n"));
        let hash = |f: &tempfile::NamedTempFile| NdjsonFile::open(f.path()).expect("open").sha256;
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
    }

    fn gzip(content: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(content).expect("gzip");
        encoder.finish().expect("gzip")
    }

    #[test]
    fn gzip_and_zstd_files_read_as_their_lines_whatever_their_names() {
        let plain = b"{\"a\":1}\n{\"b\":2}\n";
        let expected =
            events(&mut NdjsonFile::open(file_with(plain).path()).expect("open").reader_from(0, 1).expect("reader"));
        // Named .ndjson although compressed: the first bytes decide.
        for (content, compression) in
            [(gzip(plain), Compression::Gzip), (zstd::encode_all(&plain[..], 3).expect("zstd"), Compression::Zstd)]
        {
            let f = file_with(&content);
            let file = NdjsonFile::open(f.path()).expect("open");
            assert_eq!(file.compression, compression);
            assert_eq!(events(&mut file.reader_from(0, 1).expect("reader")), expected);
            // A resumed read decompresses up to the committed position.
            let rest = events(&mut file.reader_from(8, 2).expect("reader"));
            assert_eq!(rest, expected[1..]);
        }
    }

    #[test]
    fn concatenated_gzip_members_are_all_read() {
        let mut content = gzip(b"one\n");
        content.extend(gzip(b"two\n"));
        let f = file_with(&content);
        let got = events(&mut NdjsonFile::open(f.path()).expect("open").reader_from(0, 1).expect("reader"));
        assert_eq!(got.iter().map(|e| e.2.clone()).collect::<Vec<_>>(), [b"one".to_vec(), b"two".to_vec()]);
    }

    #[test]
    fn a_truncated_gzip_file_is_an_error_naming_the_file_and_what_to_do() {
        let content = gzip(&b"{\"a\":1}\n".repeat(1000));
        let f = file_with(&content[..content.len() / 2]);
        // The first read may already reach the cut (a small file is decompressed in one go).
        let error = match NdjsonFile::open(f.path()).expect("open").reader_from(0, 1) {
            Err(e) => e.to_string(),
            Ok(mut reader) => loop {
                match reader.next_line() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("a truncated gzip stream must not end cleanly"),
                    Err(e) => break e.to_string(),
                }
            },
        };
        assert!(error.contains(&f.path().display().to_string()), "{error}");
        assert!(error.contains("gzip") && error.contains("damaged or truncated"), "{error}");
    }

    #[test]
    fn a_byte_order_mark_is_skipped_and_counted_as_bytes() {
        let f = file_with(b"\xEF\xBB\xBF{\"a\":1}\nb\n");
        let file = NdjsonFile::open(f.path()).expect("open");
        let got = events(&mut file.reader_from(0, 1).expect("reader"));
        assert_eq!(got, vec![(1, 3, b"{\"a\":1}".to_vec()), (2, 11, b"b".to_vec())]);
        let gz = file_with(&gzip(b"\xEF\xBB\xBF{\"a\":1}\nb\n"));
        assert_eq!(events(&mut NdjsonFile::open(gz.path()).expect("open").reader_from(0, 1).expect("reader")), got);
    }

    #[test]
    fn directories_contribute_compressed_inputs_too() {
        let dir = tempfile::tempdir().expect("dir");
        for name in ["a.ndjson", "b.jsonl.gz", "c.ndjson.zst", "d.txt", "e.gz"] {
            std::fs::write(dir.path().join(name), b"").expect("write");
        }
        let found = expand_inputs(&[dir.path().to_path_buf()]).expect("expand");
        let names: Vec<_> = found.iter().filter_map(|p| p.file_name()?.to_str()).collect();
        assert_eq!(names, ["a.ndjson", "b.jsonl.gz", "c.ndjson.zst"]);
    }

    proptest::proptest! {
        #[test]
        fn positions_always_point_at_line_starts(content in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let f = file_with(&content);
            let file = NdjsonFile::open(f.path()).expect("open");
            let mut reader = file.reader_from(0, 1).expect("reader");
            while let Some(line) = reader.next_line().expect("read") {
                if let Line::Event { byte, bytes, .. } = line {
                    proptest::prop_assert!(content[byte as usize..].starts_with(bytes));
                    proptest::prop_assert!(byte == 0 || content[byte as usize - 1] == b'\n');
                }
            }
            proptest::prop_assert_eq!(reader.position(), content.len() as u64);
        }
    }
}
