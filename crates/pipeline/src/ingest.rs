//! File ingestion: NDJSON files → decoder → warehouse commits, resumable and idempotent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use permitflow_schema::{Decoder, Position, Pseudonymiser, Rejection};
use permitflow_source::{Line, NdjsonFile};
use permitflow_warehouse::{Counts, PendingCommit, RejectionBuffer, SourceRange, Warehouse};
use tracing::{info, info_span};

use crate::PipelineError;
use crate::config::IngestConfig;

/// What happened to one input file.
#[derive(Debug, Clone, PartialEq)]
pub struct FileReport {
    /// The file as given.
    pub path: PathBuf,
    /// Its content hash.
    pub sha256: String,
    /// Lines counted in this run (zero when the file was already committed).
    pub counts: Counts,
    /// Rejections of this run by rule.
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Commits made in this run.
    pub commits: Vec<u64>,
    /// Set when the whole content was already committed: the commit that completed it.
    pub already_committed: Option<u64>,
    /// Set when an earlier run had committed part of the file: the line it resumed at.
    pub resumed_at_line: Option<u64>,
}

/// Progress notifications for a user interface.
#[derive(Debug, Clone, Copy)]
pub enum Progress<'a> {
    /// A file starts; `from_byte` > 0 when resuming.
    FileStarted {
        /// The file.
        path: &'a Path,
        /// Its size.
        size: u64,
        /// Where reading starts.
        from_byte: u64,
    },
    /// Reading reached this byte of the current file.
    Advanced {
        /// Byte position.
        byte: u64,
    },
    /// The current file is done.
    FileFinished,
}

/// Bytes between two [`Progress::Advanced`] notifications.
const PROGRESS_EVERY_BYTES: u64 = 4 << 20;

/// Ingests files in order; each batch of lines becomes one commit recording the byte and line range it covers.
///
/// A file whose content (by SHA-256) is fully committed is skipped; one that is partly committed resumes
/// after the last committed line. Nothing is stored twice and every line is either accepted or rejected.
pub fn ingest_files(
    warehouse: &mut Warehouse,
    inputs: &[PathBuf],
    pseudonymiser: &Pseudonymiser,
    config: &IngestConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Vec<FileReport>, PipelineError> {
    let mut decoder = Decoder::new(warehouse.contract().clone(), pseudonymiser.clone());
    let mut reports = Vec::with_capacity(inputs.len());
    for path in inputs {
        reports.push(ingest_file(warehouse, &mut decoder, path, config, progress)?);
    }
    Ok(reports)
}

fn ingest_file(
    warehouse: &mut Warehouse,
    decoder: &mut Decoder,
    path: &Path,
    config: &IngestConfig,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<FileReport, PipelineError> {
    let file = NdjsonFile::open(path)?;
    let mut report = FileReport {
        path: path.to_path_buf(),
        sha256: file.sha256.clone(),
        counts: Counts::default(),
        rejected_by_rule: BTreeMap::new(),
        commits: Vec::new(),
        already_committed: None,
        resumed_at_line: None,
    };
    let done = warehouse.log().file_progress(&file.sha256);
    if let Some(done) = done.filter(|d| d.is_complete()) {
        info!(file = %path.display(), commit = done.last_seq, "already committed; skipping");
        report.already_committed = Some(done.last_seq);
        return Ok(report);
    }
    let (from_byte, from_line) = done.map(|d| (d.to_byte, d.to_line)).unwrap_or((0, 1));
    if from_byte > 0 {
        report.resumed_at_line = Some(from_line);
    }
    let source = format!("file:{}", std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()).display());
    progress(Progress::FileStarted { path, size: file.size, from_byte });
    let mut reader = file.reader_from(from_byte, from_line)?;
    let mut last_progress = from_byte;
    loop {
        let (batch_byte, batch_line) = (reader.position(), reader.next_line_number());
        let span = info_span!("batch", file = %path.display(), from_line = batch_line);
        let _guard = span.enter();
        let mut counts = Counts::default();
        let mut rejections = RejectionBuffer::default();
        while (counts.read as usize) < config.batch_lines && decoder.buffered_bytes() < config.batch_bytes {
            let Some(line) = reader.next_line()? else { break };
            let rejection = match line {
                Line::Blank { .. } => continue,
                Line::TooLong { number, len, .. } => Some((number, Rejection::too_large(len))),
                Line::Event { number, bytes, .. } => decoder
                    .decode(bytes, Position { source: &source, offset: number as i64 })
                    .err()
                    .map(|r| (number, r)),
            };
            counts.read += 1;
            match rejection {
                Some((number, rejection)) => {
                    counts.rejected += 1;
                    *report.rejected_by_rule.entry(rejection.rule.to_string()).or_default() += 1;
                    rejections.push(Position { source: &source, offset: number as i64 }, &rejection);
                }
                None => counts.accepted += 1,
            }
            if reader.position() - last_progress >= PROGRESS_EVERY_BYTES {
                last_progress = reader.position();
                progress(Progress::Advanced { byte: last_progress });
            }
        }
        if reader.position() == batch_byte {
            break;
        }
        let mut pending = PendingCommit::new(format!("{}-l{batch_line}", &file.sha256[..16]));
        for batch in decoder.finish()? {
            warehouse.stage_events(&mut pending, batch)?;
        }
        warehouse.stage_rejections(&mut pending, &mut rejections)?;
        pending.add_source(
            SourceRange::File {
                path: path.display().to_string(),
                sha256: file.sha256.clone(),
                size: file.size,
                from_byte: batch_byte,
                to_byte: reader.position(),
                from_line: batch_line,
                to_line: reader.next_line_number(),
            },
            counts,
        );
        let commit = warehouse.commit(pending)?;
        info!(commit = commit.seq, read = counts.read, accepted = counts.accepted, rejected = counts.rejected,
            to_line = reader.next_line_number(), "committed batch");
        report.counts += counts;
        report.commits.push(commit.seq);
        progress(Progress::Advanced { byte: reader.position() });
    }
    progress(Progress::FileFinished);
    Ok(report)
}
