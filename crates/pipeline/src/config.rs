//! Pipeline configuration: a TOML file, then `PERMITFLOW__SECTION__KEY` environment variables.

use std::path::{Path, PathBuf};

use permitflow_metrics::MetricsConfig;
use permitflow_source::kafka::{KafkaConfig, TopicsConfig};

use crate::run::FlushConfig;
use crate::telemetry::TelemetryConfig;
use permitflow_schema::Pseudonymiser;
use permitflow_warehouse::Location;
use serde::{Deserialize, Serialize};

use crate::PipelineError;

/// Prefix of environment variables that override the file (`PERMITFLOW__WAREHOUSE__PATH`).
pub const ENV_PREFIX: &str = "PERMITFLOW";

/// librdkafka properties from the environment, for secrets that do not belong in a file:
/// `PERMITFLOW__KAFKA__PROPERTIES__SASL_PASSWORD=…` sets `sasl.password` (the name lower-cased, `_` → `.`).
pub const KAFKA_PROPERTY_ENV_PREFIX: &str = "PERMITFLOW__KAFKA__PROPERTIES__";

/// Everything a permitflow command can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the warehouse lives.
    pub warehouse: WarehouseConfig,
    /// Pseudonymisation of personal references.
    pub privacy: PrivacyConfig,
    /// File ingestion batching.
    pub ingest: IngestConfig,
    /// Indicator settings.
    pub metrics: MetricsConfig,
    /// The Kafka cluster and consumer group of `permitflow run`.
    pub kafka: KafkaConfig,
    /// Topic names of `permitflow run`.
    pub topics: TopicsConfig,
    /// When `permitflow run` writes and commits.
    pub flush: FlushConfig,
    /// Rewriting partitions of many small files as one (`permitflow compact`, and `permitflow run`).
    pub compaction: CompactionConfig,
    /// `permitflow run`'s HTTP endpoints (metrics, health, readiness).
    pub telemetry: TelemetryConfig,
    /// Log lines.
    pub log: LogConfig,
}

/// `[log]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` (default) or `json`: one JSON object per line, with the fields of the spans it is in (topic,
    /// partition, offsets, table), for log collectors. The level comes from `RUST_LOG`.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// JSON lines.
    Json,
}

/// `[compaction]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionConfig {
    /// A partition (a table's month, or `_rejections`) is rewritten as one file once it has this many files
    /// (default 8; at least 2).
    pub min_files: usize,
    /// `permitflow run` compacts (and vacuums) this many seconds after the previous compaction (default
    /// 3600; 0: never, run `permitflow compact` yourself). A stream at the agency's pace leaves about one
    /// file per event and flush; compaction keeps scans by DataFusion, DuckDB and Spark fast.
    pub interval_s: u64,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        CompactionConfig { min_files: 8, interval_s: 3600 }
    }
}

/// `[warehouse]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarehouseConfig {
    /// Where the warehouse lives (default `./warehouse`): a local directory, or an object-store URL
    /// (`s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`, `abfss://…`). Credentials and
    /// endpoints of object stores come from their usual environment variables (`AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`, `GOOGLE_*`, `AZURE_*`),
    /// never from this file.
    pub path: Location,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        WarehouseConfig { path: Location::Local(PathBuf::from("warehouse")) }
    }
}

/// `[privacy]`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Secret HMAC key for `applicant_ref` and `employee_ref`, at least 16 bytes.
    /// No default: ingest refuses to run without one (the demo uses a public development key and says so).
    pub key: Option<String>,
}

impl PrivacyConfig {
    /// The pseudonymiser of the configured key.
    pub fn pseudonymiser(&self) -> Result<Pseudonymiser, PipelineError> {
        match &self.key {
            Some(key) => Ok(Pseudonymiser::new(key.as_bytes())?),
            None => Err(PipelineError::MissingKey),
        }
    }
}

/// `[ingest]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Lines per commit (default 500,000: a whole `--scale 1` year in one commit, ~150 MB of Arrow at most).
    pub batch_lines: usize,
    /// Input bytes per commit (default 256 MiB), whichever limit comes first.
    pub batch_bytes: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { batch_lines: default_batch_lines(), batch_bytes: default_batch_bytes() }
    }
}

fn default_batch_lines() -> usize {
    500_000
}

fn default_batch_bytes() -> usize {
    256 << 20
}

impl Config {
    /// Loads the file (if given), then environment overrides, and checks the result.
    pub fn load(file: Option<&Path>) -> Result<Config, PipelineError> {
        Config::load_from(file, None)
    }

    /// [`Config::load`] with the environment given as a map (`None`: the process environment).
    fn load_from(
        file: Option<&Path>,
        environment: Option<config::Map<String, String>>,
    ) -> Result<Config, PipelineError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            if !path.exists() {
                return Err(PipelineError::Config(format!("config file {} does not exist", path.display())));
            }
            builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
        }
        let environment: config::Map<String, String> = environment.unwrap_or_else(|| std::env::vars().collect());
        let (properties, environment): (config::Map<String, String>, config::Map<String, String>) =
            environment.into_iter().partition(|(name, _)| name.starts_with(KAFKA_PROPERTY_ENV_PREFIX));
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(environment)),
        );
        let mut config: Config = builder.build().and_then(|c| c.try_deserialize()).map_err(|e| {
            PipelineError::Config(match file {
                Some(path) => format!("{}: {e}", path.display()),
                None => e.to_string(),
            })
        })?;
        for (name, value) in properties {
            let property = name[KAFKA_PROPERTY_ENV_PREFIX.len()..].to_lowercase().replace('_', ".");
            config.kafka.properties.insert(property, value);
        }
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks, with errors that name the field.
    pub fn validate(&self) -> Result<(), PipelineError> {
        if self.ingest.batch_lines == 0 {
            return Err(PipelineError::Config("ingest.batch_lines must be at least 1".into()));
        }
        if self.ingest.batch_bytes < permitflow_schema::MAX_EVENT_BYTES {
            return Err(PipelineError::Config(format!(
                "ingest.batch_bytes must be at least {} (one maximal event)",
                permitflow_schema::MAX_EVENT_BYTES
            )));
        }
        if self.kafka.group_id.trim().is_empty() || self.kafka.bootstrap_servers.trim().is_empty() {
            return Err(PipelineError::Config("kafka.group_id and kafka.bootstrap_servers must not be empty".into()));
        }
        if self.flush.max_rows == 0 || self.flush.max_age_ms == 0 || self.flush.max_bytes == 0 {
            return Err(PipelineError::Config(
                "flush.max_rows, flush.max_bytes and flush.max_age_ms must be at least 1".into(),
            ));
        }
        if self.flush.max_buffered_bytes < self.flush.max_bytes {
            return Err(PipelineError::Config(format!(
                "flush.max_buffered_bytes ({}) must be at least flush.max_bytes ({})",
                self.flush.max_buffered_bytes, self.flush.max_bytes
            )));
        }
        if self.compaction.min_files < 2 {
            return Err(PipelineError::Config(format!(
                "compaction.min_files ({}) must be at least 2: one file is already compact",
                self.compaction.min_files
            )));
        }
        let contract = permitflow_schema::Contract::embedded()?;
        let known = contract
            .event("application.submitted")
            .and_then(|e| e.fields.iter().find(|f| f.name == "permit_type"))
            .map(|f| f.kind.clone());
        if let Some(permitflow_schema::FieldKind::Enum(values)) = known {
            permitflow_metrics::Targets::load(self.metrics.targets_file.as_deref(), &values)
                .map_err(|e| PipelineError::Config(format!("metrics.targets_file: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_kafka_config_loads_and_states_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../pipelines/kafka.toml");
        let config = Config::load_from(Some(&path), Some(config::Map::new())).expect("the example loads");
        assert_eq!(config.flush, FlushConfig::default(), "[flush] of the example");
        assert_eq!(config.compaction, CompactionConfig::default(), "[compaction] of the example");
        assert_eq!(config.metrics.materialize_interval_s, MetricsConfig::default().materialize_interval_s);
    }

    #[test]
    fn file_values_are_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[warehouse]\npath = \"/data/wh\"\n[ingest]\nbatch_lines = 10\n").expect("write");
        let config = Config::load(Some(&path)).expect("loads");
        assert_eq!(config.warehouse.path, Location::Local(PathBuf::from("/data/wh")));
        assert_eq!(config.ingest.batch_lines, 10);
        assert_eq!(config.ingest.batch_bytes, default_batch_bytes());

        let mut env = config::Map::new();
        env.insert("PERMITFLOW__WAREHOUSE__PATH".to_string(), "s3://bucket/permitflow".to_string());
        let config = Config::load_from(Some(&path), Some(env)).expect("loads");
        assert_eq!(config.warehouse.path.to_string(), "s3://bucket/permitflow", "the environment overrides the file");
        let mut env = config::Map::new();
        env.insert("PERMITFLOW__WAREHOUSE__PATH".to_string(), "ftp://host/wh".to_string());
        let err = Config::load_from(Some(&path), Some(env)).expect_err("an unknown scheme is refused").to_string();
        assert!(err.contains("ftp://") && err.contains("s3://"), "{err}");

        std::fs::write(&path, "[warehouse]\npaht = \"/x\"\n").expect("write");
        let err = Config::load(Some(&path)).expect_err("typo is refused").to_string();
        assert!(err.contains("paht"), "{err}");
    }

    #[test]
    fn unknown_fee_based_type_in_the_targets_file_names_the_file_and_value() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("targets.toml");
        let text = permitflow_metrics::DEFAULT_TARGETS.replace("\"study\",", "\"study\", \"tourist\",");
        std::fs::write(&path, text).expect("write");
        let mut config = Config::default();
        config.metrics.targets_file = Some(path);
        let err = config.validate().expect_err("refused").to_string();
        assert!(
            err.contains("targets.toml") && err.contains("fee_based_permit_types") && err.contains("tourist"),
            "{err}"
        );
    }

    #[test]
    fn topics_and_kafka_settings_come_from_the_environment_over_the_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("kafka.toml");
        std::fs::write(
            &path,
            "[kafka]\ngroup_id = \"from-file\"\n[kafka.properties]\n\"security.protocol\" = \"SSL\"\n",
        )
        .expect("write");
        let env = [
            ("PERMITFLOW__TOPICS__DECISIONS", "migri.decisions"),
            ("PERMITFLOW__KAFKA__PROPERTIES__SASL_PASSWORD", "s3cret"),
            ("PERMITFLOW__KAFKA__PROPERTIES__SECURITY_PROTOCOL", "SASL_SSL"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
        let config = Config::load_from(Some(&path), Some(env)).expect("loads");
        assert_eq!(config.topics.decisions, "migri.decisions");
        assert_eq!(config.kafka.group_id, "from-file");
        assert_eq!(config.kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(config.kafka.properties.get("sasl.password").map(String::as_str), Some("s3cret"));
        assert_eq!(config.kafka.properties.len(), 2, "{:?}", config.kafka.properties);
    }

    #[test]
    fn missing_key_says_how_to_set_it() {
        let err = PrivacyConfig::default().pseudonymiser().expect_err("no key").to_string();
        assert!(err.contains("PERMITFLOW__PRIVACY__KEY"), "{err}");
    }
}
