//! Progress of long steps: indicatif bars on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use permitflow_gen::GenSummary;
use permitflow_pipeline::Progress;
use tracing::info;

/// Whether progress bars can be drawn (stderr is a terminal).
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// Bytes between two log lines when stderr is not a terminal.
const LOG_EVERY_BYTES: u64 = 64 << 20;

/// Progress of `ingest`: one bar per file, by bytes.
#[derive(Default)]
pub struct IngestProgress {
    bar: Option<ProgressBar>,
    file: Option<(PathBuf, u64)>,
    last_logged: u64,
}

impl IngestProgress {
    /// Applies a notification of the pipeline.
    pub fn update(&mut self, progress: Progress<'_>) {
        match progress {
            Progress::FileStarted { path, size, from_byte } => {
                if interactive() {
                    let bar = ProgressBar::new(size).with_position(from_byte).with_message(path.display().to_string());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                        )
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                    );
                    self.bar = Some(bar);
                } else {
                    info!(file = %path.display(), size, from_byte, "ingesting");
                }
                self.file = Some((path.to_path_buf(), size));
                self.last_logged = from_byte;
            }
            Progress::Advanced { byte } => {
                if let Some(bar) = &self.bar {
                    bar.set_position(byte);
                } else if let Some((path, size)) = &self.file
                    && byte - self.last_logged >= LOG_EVERY_BYTES
                {
                    self.last_logged = byte;
                    info!(file = %path.display(), byte, percent = 100 * byte / (*size).max(1), "reading");
                }
            }
            Progress::FileFinished => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                self.file = None;
            }
        }
    }
}

/// Progress of `generate`: a bar over the years.
pub struct GenerateProgress {
    bar: Option<ProgressBar>,
}

impl GenerateProgress {
    /// Progress over `years` years.
    pub fn new(years: u32) -> Self {
        let bar = interactive().then(|| {
            let bar = ProgressBar::new(u64::from(years));
            bar.set_style(
                ProgressStyle::with_template("generating [{bar:30}] {pos}/{len} years {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        GenerateProgress { bar }
    }

    /// A year's file is written.
    pub fn year_done(&mut self, year: i32, so_far: &GenSummary) {
        match &self.bar {
            Some(bar) => {
                bar.set_message(format!("{year}: {} lines so far", so_far.lines));
                bar.inc(1);
            }
            None => info!(year, lines = so_far.lines, "generated year"),
        }
    }

    /// All years are written.
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
