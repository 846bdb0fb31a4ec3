//! Realistic, seeded synthetic workloads for permitflow: the events an immigration authority's
//! case-management, HR, bookkeeping and booking systems would send, as NDJSON files.
//!
//! This crate owns the simulated agency (permit types with their volumes, seasons, fees, processing
//! times and outcomes; staff and their time allocation; costs; service-point appointments; appeals)
//! and the faults real producers make (resent events, late events, malformed lines of every
//! rejection kind). One year at scale 1 resembles the Finnish Immigration Service in 2017: about
//! 123,000 applications, 140,000 decisions, 660 person-years, 19 M€ of fees, 34 M€ of costs and
//! 8,000 identification appointments a month.
//!
//! The output is a pure function of [`GenConfig`]: no clock, no global random state, no hash-map
//! order. It does not touch the warehouse or Kafka, and it does not validate its own output; the
//! contract lives in `permitflow-schema`, and this crate's tests decode every generated line with it.
//!
//! ```
//! use permitflow_gen::{GenConfig, generate_year};
//!
//! let config = GenConfig { scale: 0.002, duplicate_share: 0.01, malformed_share: 0.01, ..GenConfig::default() };
//! let mut out = Vec::new();
//! let summary = generate_year(&config, 2017, &mut out)?;
//!
//! // Read back: one line per event, resent copy or malformed line.
//! let lines = out.split(|b| *b == b'\n').filter(|line| !line.is_empty()).count() as u64;
//! assert_eq!(lines, summary.lines);
//! assert_eq!(summary.lines, summary.valid_events + summary.duplicates + summary.malformed);
//! assert_eq!(out.len() as u64, summary.bytes);
//!
//! // The same configuration writes the same bytes.
//! let mut again = Vec::new();
//! generate_year(&config, 2017, &mut again)?;
//! assert_eq!(out, again);
//! # Ok::<(), permitflow_gen::GenError>(())
//! ```
#![warn(missing_docs)]

mod event;
mod inject;
mod model;
mod time;
mod workload;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Earliest year that can be generated.
pub const MIN_YEAR: i32 = 1970;
/// Latest year that can be generated (timestamps keep four-digit years).
pub const MAX_YEAR: i32 = 9000;
/// Largest volume relative to the agency in 2017. A scale-1 year is about 380,000 lines (120 MB) and is
/// built in memory before it is written, so scale 20 needs a few gigabytes.
pub const MAX_SCALE: f64 = 20.0;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// Random seed; the same configuration always gives the same bytes.
    pub seed: u64,
    /// First year generated.
    pub start_year: i32,
    /// Number of years, one file each.
    pub years: u32,
    /// Volume relative to the agency in 2017 (1.0 ≈ 380,000 events a year), above 0 and at most [`MAX_SCALE`].
    pub scale: f64,
    /// Share of valid events resent later in the file with the same `event_id` and content, in [0, 1).
    pub duplicate_share: f64,
    /// Share of valid events written out of time order (days to months after their neighbours), in [0, 1).
    pub late_share: f64,
    /// Malformed lines added, relative to the valid events, in [0, 1); every rejection kind in turn.
    pub malformed_share: f64,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 42,
            start_year: 2017,
            years: 1,
            scale: 1.0,
            duplicate_share: 0.0,
            late_share: 0.0,
            malformed_share: 0.0,
        }
    }
}

impl GenConfig {
    /// Checks every field; the error names the field and the allowed values.
    pub fn validate(&self) -> Result<(), GenError> {
        let invalid = |message: String| Err(GenError::InvalidConfig(message));
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= MAX_SCALE) {
            return invalid(format!(
                "scale must be above 0 and at most {MAX_SCALE} (1.0 = the agency in 2017), got {}",
                self.scale
            ));
        }
        for (name, share) in [
            ("duplicate_share", self.duplicate_share),
            ("late_share", self.late_share),
            ("malformed_share", self.malformed_share),
        ] {
            if !(0.0..1.0).contains(&share) {
                return invalid(format!("{name} must be at least 0 and below 1 (e.g. 0.01 for 1 %), got {share}"));
            }
        }
        if self.years == 0 {
            return invalid("years must be at least 1".into());
        }
        let last = i64::from(self.start_year) + i64::from(self.years) - 1;
        if !(MIN_YEAR..=MAX_YEAR).contains(&self.start_year) || last > i64::from(MAX_YEAR) {
            return invalid(format!(
                "start_year {} with years {} must stay within {MIN_YEAR}..={MAX_YEAR}",
                self.start_year, self.years
            ));
        }
        Ok(())
    }
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenSummary {
    /// Files written, in year order (empty for [`generate_year`]).
    pub files: Vec<PathBuf>,
    /// Lines written: valid events, resent copies and malformed lines.
    pub lines: u64,
    /// Distinct valid events (each `event_id` once).
    pub valid_events: u64,
    /// Distinct valid events by `event_type`.
    pub by_type: BTreeMap<String, u64>,
    /// Resent copies of valid events (same `event_id` and content).
    pub duplicates: u64,
    /// Valid events written out of time order.
    pub late: u64,
    /// Malformed lines, each one a rejection.
    pub malformed: u64,
    /// Malformed lines by kind (`invalid_json`, `allocation_sum`, …).
    pub malformed_by_kind: BTreeMap<String, u64>,
    /// Bytes written, newlines included.
    pub bytes: u64,
}

impl GenSummary {
    /// Adds the counts of `other` to these.
    fn add(&mut self, other: GenSummary) {
        self.files.extend(other.files);
        self.lines += other.lines;
        self.valid_events += other.valid_events;
        self.duplicates += other.duplicates;
        self.late += other.late;
        self.malformed += other.malformed;
        self.bytes += other.bytes;
        for (event_type, count) in other.by_type {
            *self.by_type.entry(event_type).or_default() += count;
        }
        for (kind, count) in other.malformed_by_kind {
            *self.malformed_by_kind.entry(kind).or_default() += count;
        }
    }
}

/// Errors of the generator.
#[derive(Debug, thiserror::Error)]
pub enum GenError {
    /// Creating the output directory or writing a year file failed.
    #[error(
        "cannot write {}: {source}; check that the directory can be created, is writable and the disk has space",
        path.display()
    )]
    Io {
        /// The directory or file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the caller's writer failed.
    #[error("writing the generated events failed: {0}; check the output they are written to")]
    Write(#[from] std::io::Error),
    /// A configuration field is out of range.
    #[error("invalid generator configuration: {0}")]
    InvalidConfig(String),
}

/// Writes one file per year, `out_dir/events-YYYY.ndjson` (creating `out_dir`), calling `on_year`
/// with the totals so far after each year.
pub fn generate(
    config: &GenConfig,
    out_dir: &Path,
    on_year: &mut dyn FnMut(i32, &GenSummary),
) -> Result<GenSummary, GenError> {
    config.validate()?;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| GenError::Io { path, source }
    };
    std::fs::create_dir_all(out_dir).map_err(io_error(out_dir))?;
    let mut total = GenSummary::default();
    for year in (0..config.years).map(|i| config.start_year + i as i32) {
        let path = out_dir.join(format!("events-{year:04}.ndjson"));
        let mut file = BufWriter::new(File::create(&path).map_err(io_error(&path))?);
        let mut summary = match generate_year(config, year, &mut file) {
            Err(GenError::Write(source)) => return Err(io_error(&path)(source)),
            other => other?,
        };
        file.flush().map_err(io_error(&path))?;
        summary.files.push(path);
        total.add(summary);
        on_year(year, &total);
    }
    Ok(total)
}

/// Writes the events of one year to `out`: valid events roughly in time order, with the configured
/// resent copies, late events and malformed lines. [`GenSummary::files`] is left empty.
pub fn generate_year(config: &GenConfig, year: i32, out: &mut dyn Write) -> Result<GenSummary, GenError> {
    config.validate()?;
    if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
        return Err(GenError::InvalidConfig(format!("year {year} is outside {MIN_YEAR}..={MAX_YEAR}")));
    }
    inject::write_year(config, year, &workload::year_events(config, year), out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_configs_name_the_field() {
        let cases = [
            (GenConfig { scale: 0.0, ..GenConfig::default() }, "scale"),
            (GenConfig { scale: f64::NAN, ..GenConfig::default() }, "scale"),
            (GenConfig { duplicate_share: 1.0, ..GenConfig::default() }, "duplicate_share"),
            (GenConfig { late_share: -0.1, ..GenConfig::default() }, "late_share"),
            (GenConfig { malformed_share: f64::INFINITY, ..GenConfig::default() }, "malformed_share"),
            (GenConfig { years: 0, ..GenConfig::default() }, "years"),
            (GenConfig { start_year: 1969, ..GenConfig::default() }, "start_year"),
            (GenConfig { start_year: 9000, years: 2, ..GenConfig::default() }, "start_year"),
        ];
        for (config, field) in cases {
            let error = config.validate().expect_err(field).to_string();
            assert!(error.contains(field), "{error}");
        }
        assert!(GenConfig::default().validate().is_ok());
    }
}
