//! `pipelines/targets.toml`: the agreement's targets and the fee-based permit types, as data the models
//! read through tables (`fee_based_permit_types`, `processing_targets`, `appointment_targets`,
//! `appeal_targets`, `backlog_target`), never as SQL literals.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use serde::{Deserialize, Serialize};

use crate::{MetricsError, query_error};

/// The built-in targets file (`pipelines/targets.toml`).
pub const DEFAULT_TARGETS: &str = include_str!("../../../pipelines/targets.toml");

/// The contents of a targets file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    /// Permit types whose work is fee-based: the scope of `cost_recovery`.
    pub fee_based_permit_types: Vec<String>,
    /// Backlog change over a year, percent (the agreement: −30).
    pub backlog_change_target_pct: f64,
    /// Processing-time target in days per permit type.
    #[serde(default)]
    pub processing_days: BTreeMap<String, f64>,
    /// Appointment waiting-time target in days per service.
    #[serde(default)]
    pub appointment_wait_days: BTreeMap<String, f64>,
    /// Appeal return-rate targets per permit type.
    #[serde(default)]
    pub appeal_returns: BTreeMap<String, AppealTargets>,
}

/// Upper bounds of the appeal return shares of one permit type.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppealTargets {
    /// Share returned for a legal or procedural error.
    pub legal_error: Option<f64>,
    /// Share returned for a different assessment of facts.
    pub fact_assessment: Option<f64>,
}

impl Default for Targets {
    fn default() -> Self {
        toml::from_str(DEFAULT_TARGETS).expect("the built-in pipelines/targets.toml parses (tested)")
    }
}

impl Targets {
    /// Reads `path`, or the built-in file when `None`, and checks the permit types against `permit_types`.
    pub fn load(path: Option<&Path>, permit_types: &[String]) -> Result<Targets, MetricsError> {
        let (targets, origin) = match path {
            None => (Targets::default(), PathBuf::from("pipelines/targets.toml (built in)")),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| MetricsError::Targets {
                    path: path.to_path_buf(),
                    message: format!("cannot read it: {source}"),
                })?;
                let targets: Targets = toml::from_str(&text)
                    .map_err(|e| MetricsError::Targets { path: path.to_path_buf(), message: e.to_string() })?;
                (targets, path.to_path_buf())
            }
        };
        targets.check(permit_types).map_err(|message| MetricsError::Targets { path: origin, message })?;
        Ok(targets)
    }

    fn check(&self, permit_types: &[String]) -> Result<(), String> {
        let known = |section: &str, t: &String| {
            if permit_types.contains(t) {
                Ok(())
            } else {
                Err(format!("{section}: `{t}` is not a permit type (one of {})", permit_types.join(", ")))
            }
        };
        self.fee_based_permit_types.iter().try_for_each(|t| known("fee_based_permit_types", t))?;
        self.processing_days.keys().try_for_each(|t| known("[processing_days]", t))?;
        self.appeal_returns.keys().try_for_each(|t| known("[appeal_returns]", t))?;
        let days = self.processing_days.iter().chain(&self.appointment_wait_days);
        if let Some((key, value)) = days.into_iter().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
            return Err(format!("target `{key}` = {value}: a target in days must be a positive number"));
        }
        Ok(())
    }

    /// A stable text of every value, for noticing that the targets changed since the marts were built.
    pub fn fingerprint(&self) -> String {
        toml::to_string(self).expect("targets serialise")
    }

    /// Registers the target tables in `ctx`.
    pub fn register(&self, ctx: &SessionContext) -> Result<(), MetricsError> {
        let strings = |values: Vec<&str>| Arc::new(StringArray::from(values)) as ArrayRef;
        let floats = |values: Vec<Option<f64>>| Arc::new(Float64Array::from(values)) as ArrayRef;
        let fee_based = self.fee_based_permit_types.iter().map(String::as_str).collect();
        register(ctx, "fee_based_permit_types", &[("permit_type", false)], vec![strings(fee_based)])?;
        register(
            ctx,
            "processing_targets",
            &[("permit_type", false), ("target_days", false)],
            vec![
                strings(self.processing_days.keys().map(String::as_str).collect()),
                floats(self.processing_days.values().copied().map(Some).collect()),
            ],
        )?;
        register(
            ctx,
            "backlog_target",
            &[("change_pct", false)],
            vec![floats(vec![Some(self.backlog_change_target_pct)])],
        )?;
        register(
            ctx,
            "appointment_targets",
            &[("service", false), ("target_days", false)],
            vec![
                strings(self.appointment_wait_days.keys().map(String::as_str).collect()),
                floats(self.appointment_wait_days.values().copied().map(Some).collect()),
            ],
        )?;
        register(
            ctx,
            "appeal_targets",
            &[("permit_type", false), ("legal_error_target", true), ("fact_assessment_target", true)],
            vec![
                strings(self.appeal_returns.keys().map(String::as_str).collect()),
                floats(self.appeal_returns.values().map(|t| t.legal_error).collect()),
                floats(self.appeal_returns.values().map(|t| t.fact_assessment).collect()),
            ],
        )?;
        Ok(())
    }
}

fn register(
    ctx: &SessionContext,
    name: &str,
    fields: &[(&str, bool)],
    columns: Vec<ArrayRef>,
) -> Result<(), MetricsError> {
    let schema = Arc::new(Schema::new(
        fields
            .iter()
            .zip(&columns)
            .map(|((field, nullable), column)| Field::new(*field, column.data_type().clone(), *nullable))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let table = MemTable::try_new(schema, vec![vec![batch]]).map_err(query_error(name))?;
    ctx.register_table(name, Arc::new(table)).map_err(query_error(name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permit_types() -> Vec<String> {
        ["study", "asylum", "family", "work_specialist", "work_startup", "work_employee", "work_other"]
            .into_iter()
            .chain(["extended_permit", "permanent_permit", "eu_registration", "citizenship", "travel_document"])
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn built_in_file_holds_the_agreement_defaults() {
        let targets = Targets::load(None, &permit_types()).expect("built-in targets are valid");
        assert_eq!(targets.processing_days["work_specialist"], 14.0);
        assert_eq!(targets.processing_days["asylum"], 183.0);
        assert_eq!(targets.appointment_wait_days["identification"], 30.0);
        assert_eq!(targets.appeal_returns["asylum"].legal_error, Some(0.03));
        assert!(!targets.fee_based_permit_types.contains(&"asylum".to_string()));
        assert_eq!(targets.backlog_change_target_pct, -30.0);
    }

    #[test]
    fn unknown_permit_type_names_the_file_and_section() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("targets.toml");
        let text = DEFAULT_TARGETS.replace("work_startup = 14", "work_startpu = 14");
        std::fs::write(&path, text).expect("write");
        let err = Targets::load(Some(&path), &permit_types()).expect_err("typo refused").to_string();
        assert!(err.contains("targets.toml") && err.contains("[processing_days]") && err.contains("work_startpu"));
    }

    #[test]
    fn a_non_positive_day_target_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("targets.toml");
        std::fs::write(&path, DEFAULT_TARGETS.replace("identification = 30", "identification = 0")).expect("write");
        let err = Targets::load(Some(&path), &permit_types()).expect_err("zero refused").to_string();
        assert!(err.contains("identification"), "{err}");
    }
}
