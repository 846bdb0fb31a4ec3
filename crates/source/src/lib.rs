//! Where events come from, each payload with its position: NDJSON files, and
//! Kafka topics read by a consumer group ([`kafka`]), whose dead letters it also
//! produces.
//!
//! This crate reads bytes and says where they were; it does not parse or
//! validate events (the schema crate does) and does not write the warehouse:
//! where a Kafka partition resumes is asked of the caller.
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

use sha2::{Digest, Sha256};

/// Longest line kept in memory; longer lines are reported as [`Line::TooLong`] (1 MiB, the contract's limit).
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// Read buffer size.
const BUFFER_BYTES: usize = 1 << 20;

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

/// An NDJSON file identified by its content hash.
#[derive(Debug, Clone)]
pub struct NdjsonFile {
    /// Path as given.
    pub path: PathBuf,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
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
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(NdjsonFile { path, sha256: hex::encode(hasher.finalize()), size })
    }

    /// A line reader starting at `byte` (a line start) with line number `line`.
    pub fn reader_from(&self, byte: u64, line: u64) -> Result<LineReader, SourceError> {
        let io = |source| SourceError::Io { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(io)?;
        file.seek(SeekFrom::Start(byte)).map_err(io)?;
        Ok(LineReader {
            path: self.path.clone(),
            reader: BufReader::with_capacity(BUFFER_BYTES, file),
            buf: Vec::new(),
            byte,
            next_line: line,
        })
    }
}

/// Expands files and directories into the NDJSON files to read, sorted by path.
///
/// Directories contribute their `*.ndjson` and `*.jsonl` files (not recursively).
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, SourceError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io { path: path.clone(), source })?;
        if meta.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| SourceError::Io { path: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("ndjson" | "jsonl")))
                .collect();
            if found.is_empty() {
                return Err(SourceError::NotAnInput {
                    path: path.clone(),
                    message: "directory has no *.ndjson or *.jsonl files".into(),
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
    reader: BufReader<File>,
    buf: Vec<u8>,
    byte: u64,
    next_line: u64,
}

impl LineReader {
    /// Byte offset of the next unread line: where a resumed read starts.
    pub fn position(&self) -> u64 {
        self.byte
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
            let available =
                self.reader.fill_buf().map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
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
