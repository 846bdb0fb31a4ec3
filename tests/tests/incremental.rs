//! Incremental materialisation gives the same marts as a full rebuild, also when later parts of the data
//! are full of late events, and recomputes only the years the new events touch; compactions in between
//! change no figure. The forecast marts, recomputed from the marts, are equal too.

use std::io::Write;
use std::path::{Path, PathBuf};

use permitflow_e2e::{ingest, rows, same_value};
use permitflow_gen::{GenConfig, generate};
use permitflow_metrics::forecast::{FORECAST_ACCURACY, FORECAST_MARTS};
use permitflow_metrics::{MODELS, MetricsConfig, Rebuild, Scope, materialize, session};
use permitflow_warehouse::{CompactOptions, Warehouse};

/// The month ("YYYY-MM", as written, before UTC normalisation) of a generated line, if it parses.
fn month_of(line: &str) -> Option<String> {
    let at = line.split("\"occurred_at\":").nth(1)?.trim_start().strip_prefix('"')?;
    at.get(..7).map(str::to_string)
}

/// Splits the generated lines into three files: the later ones hold events of earlier months (late).
fn split(files: &[PathBuf], out: &Path) -> Vec<PathBuf> {
    let paths: Vec<PathBuf> = (1..=3).map(|n| out.join(format!("part{n}.ndjson"))).collect();
    let mut parts: Vec<std::fs::File> = paths.iter().map(|p| std::fs::File::create(p).expect("create part")).collect();
    let mut counts = [0usize; 3];
    let lines: Vec<Vec<u8>> = files
        .iter()
        .flat_map(|f| {
            std::fs::read(f).expect("read input").split(|b| *b == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>()
        })
        .filter(|line| !line.is_empty())
        .collect();
    for (index, line) in lines.iter().enumerate() {
        let month = month_of(&String::from_utf8_lossy(line)).unwrap_or_default();
        let held = index % 5 == 0;
        let part = match month.as_str() {
            m if m >= "2018-10" => 2,
            m if m >= "2018-07" => usize::from(held) + 1,
            m if m >= "2018-04" => 1,
            m if m >= "2017-12" => usize::from(held),
            _ => 0,
        };
        counts[part] += 1;
        parts[part].write_all(line).and_then(|()| parts[part].write_all(b"\n")).expect("write part");
    }
    assert!(counts.iter().all(|c| *c > 100), "every part holds events: {counts:?}");
    paths
}

async fn marts(warehouse: &Warehouse) -> Vec<(String, Vec<Vec<String>>)> {
    let ctx = session(warehouse, &MetricsConfig::default()).await.expect("session");
    let mut out = Vec::new();
    for name in MODELS.iter().map(|m| m.name).chain(FORECAST_MARTS) {
        out.push((name.to_string(), rows(&ctx, &format!("SELECT * FROM {name}")).await));
    }
    out
}

/// Every mart of `warehouse` equals the full rebuild's (`full`), row by row.
async fn assert_same_marts(warehouse: &Warehouse, full: &Warehouse, what: &str) {
    for ((name, rows), (_, full_rows)) in marts(warehouse).await.into_iter().zip(marts(full).await) {
        // Two years forecast, but leave no months for a backtest.
        assert!(!full_rows.is_empty() || name == "data_quality" || name == FORECAST_ACCURACY, "{name} is empty");
        assert_eq!(rows.len(), full_rows.len(), "{name}: row count ({what})");
        for (a, b) in rows.iter().zip(&full_rows) {
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y, 1e-9));
            assert!(same, "{name}: row {a:?} ({what}) differs from the full rebuild's {b:?}");
        }
    }
}

/// Two years with resent duplicates, late events and malformed lines.
fn two_years_with_bad_and_late_events() -> GenConfig {
    GenConfig {
        start_year: 2017,
        years: 2,
        scale: 0.01,
        duplicate_share: 0.01,
        late_share: 0.02,
        malformed_share: 0.005,
        ..GenConfig::default()
    }
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn incremental_materialisation_of_parts_with_late_events_equals_a_full_rebuild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = two_years_with_bad_and_late_events();
    let generated = generate(&config, &dir.path().join("input"), &mut |_, _| {}).expect("generate");
    let parts = split(&generated.files, dir.path());

    let mut incremental = Warehouse::open(dir.path().join("incremental")).expect("open");
    let expected_scopes =
        [Scope::Full { reason: "no earlier materialisation" }, Scope::FromYear(2017), Scope::FromYear(2018)];
    let untouched_2017 = dir.path().join("incremental/marts/inflow/year=2017/data.parquet");
    let mut before_part3 = None;
    for (part, expected_scope) in parts.iter().zip(expected_scopes) {
        if expected_scope == Scope::FromYear(2018) {
            before_part3 = Some(modified(&untouched_2017));
        }
        ingest(&mut incremental, std::slice::from_ref(part));
        let report =
            materialize(&incremental, &MetricsConfig::default(), Rebuild::Incremental).await.expect("materialize");
        assert_eq!(report.scope, expected_scope, "after {}", part.display());
    }
    assert_eq!(Some(modified(&untouched_2017)), before_part3, "2017 is not rewritten for late events of 2018");
    let again = materialize(&incremental, &MetricsConfig::default(), Rebuild::Incremental).await.expect("materialize");
    assert_eq!(again.scope, Scope::UpToDate);

    let mut full = Warehouse::open(dir.path().join("full")).expect("open");
    ingest(&mut full, &parts);
    materialize(&full, &MetricsConfig::default(), Rebuild::Full).await.expect("materialize");

    assert_same_marts(&incremental, &full, "incremental").await;
}

/// The lines of the generated files whose index modulo `n` is in `residues`, as one file.
fn residues(files: &[PathBuf], out: &Path, n: usize, residues: std::ops::Range<usize>) -> PathBuf {
    let path = out.join(format!("mod-{n}-{}-{}.ndjson", residues.start, residues.end));
    let mut file = std::fs::File::create(&path).expect("create part");
    let lines = files.iter().flat_map(|f| {
        std::fs::read(f).expect("read input").split(|b| *b == b'\n').map(<[u8]>::to_vec).collect::<Vec<_>>()
    });
    for (_, line) in lines.filter(|l| !l.is_empty()).enumerate().filter(|(i, _)| residues.contains(&(i % n))) {
        file.write_all(&line).and_then(|()| file.write_all(b"\n")).expect("write part");
    }
    path
}

#[tokio::test]
async fn compactions_between_materialisations_keep_the_marts_equal_to_a_full_rebuild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = two_years_with_bad_and_late_events();
    let generated = generate(&config, &dir.path().join("input"), &mut |_, _| {}).expect("generate");
    // Four parts spread over the whole history: each day gets a file from each part.
    let parts: Vec<PathBuf> = (0..4).map(|i| residues(&generated.files, dir.path(), 4, i..i + 1)).collect();
    let metrics = MetricsConfig::default();

    let mut warehouse = Warehouse::open(dir.path().join("compacted")).expect("open");
    ingest(&mut warehouse, &parts[..2]);
    materialize(&warehouse, &metrics, Rebuild::Incremental).await.expect("materialize");
    ingest(&mut warehouse, &parts[2..3]);
    // What the marts have seen is compacted; the third part's files stay as they were.
    let through = permitflow_metrics::materialized_through(&warehouse).expect("state");
    let report = warehouse.compact(&CompactOptions { min_files: 2, through, vacuum: false }).expect("compact");
    assert!(report.files_before >= 2 * report.files_after, "{report:?}");
    let update = materialize(&warehouse, &metrics, Rebuild::Incremental).await.expect("materialize");
    assert!(
        matches!(update.scope, Scope::FromYear(_)),
        "still incremental after compacting what the marts had seen: {:?}",
        update.scope
    );

    ingest(&mut warehouse, &parts[3..]);
    // Now also the files the marts have not seen: the next materialisation must not trust its summaries.
    warehouse.compact(&CompactOptions { min_files: 2, through: None, vacuum: false }).expect("compact");
    let update = materialize(&warehouse, &metrics, Rebuild::Incremental).await.expect("materialize");
    assert_eq!(
        update.scope,
        Scope::Full { reason: "files committed since the last materialisation were compacted before it" }
    );

    let mut full = Warehouse::open(dir.path().join("full")).expect("open");
    ingest(&mut full, &parts);
    materialize(&full, &metrics, Rebuild::Full).await.expect("materialize");
    assert_same_marts(&warehouse, &full, "after compactions").await;
}

#[tokio::test]
async fn small_updates_kept_as_summary_deltas_equal_a_full_rebuild_also_across_a_checkpoint_and_log_clean_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = two_years_with_bad_and_late_events();
    let generated = generate(&config, &dir.path().join("input"), &mut |_, _| {}).expect("generate");
    // The bulk of the history first, then three updates of 1 % of the lines each, spread over both years.
    let mut parts = vec![residues(&generated.files, dir.path(), 100, 3..100)];
    parts.extend((0..3).map(|i| residues(&generated.files, dir.path(), 100, i..i + 1)));
    let metrics = MetricsConfig::default();

    let mut warehouse = Warehouse::open(dir.path().join("incremental")).expect("open");
    for (n, part) in parts.iter().enumerate() {
        ingest(&mut warehouse, std::slice::from_ref(part));
        if n == 2 {
            // A compaction of what the marts have seen checkpoints the tables; the commits since the last
            // materialisation are read from the log after the checkpoint.
            let through = permitflow_metrics::materialized_through(&warehouse).expect("state");
            warehouse.compact(&CompactOptions { min_files: 2, through, vacuum: false }).expect("compact");
        }
        if n == 3 {
            // The log clean-up (after the log retention) removes the commits before the newest checkpoints,
            // among them commits since the last materialisation.
            warehouse.compact(&CompactOptions { min_files: 2, through: None, vacuum: false }).expect("compact");
            assert!(remove_commits_before_checkpoints(&dir.path().join("incremental")) > 0);
        }
        let report = materialize(&warehouse, &metrics, Rebuild::Incremental).await.expect("materialize");
        if n == 3 {
            let reason = match report.scope {
                Scope::Full { reason } => reason,
                other => panic!("after pruning: {other:?}"),
            };
            assert!(reason.contains("clean-up"), "says why it rebuilds: {reason}");
            continue;
        }
        let deltas = warehouse.mart_summary_deltas("application_firsts").expect("deltas");
        if n == 0 {
            assert!(deltas.is_empty(), "a full run writes the summary's base only: {deltas:?}");
        } else {
            assert!(matches!(report.scope, Scope::FromYear(_)), "update {n}: {:?}", report.scope);
            assert_eq!(deltas.len(), 1, "update {n}: the newest delta replaces the older ones");
        }
    }

    let mut full = Warehouse::open(dir.path().join("full")).expect("open");
    ingest(&mut full, &parts);
    materialize(&full, &metrics, Rebuild::Full).await.expect("materialize");
    assert_same_marts(&warehouse, &full, "after small updates").await;
}

/// Removes every table's commit files before its newest checkpoint, as Delta's log clean-up does once they
/// are older than the log retention; returns how many.
fn remove_commits_before_checkpoints(root: &Path) -> usize {
    let mut removed = 0;
    let logs = std::fs::read_dir(root.join("events"))
        .expect("event tables")
        .flatten()
        .map(|e| e.path().join("_delta_log"))
        .chain([root.join("_rejections/_delta_log")]);
    for log in logs {
        let names: Vec<String> = std::fs::read_dir(&log)
            .expect("log")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let version = |name: &str| name.split('.').next().and_then(|v| v.parse::<u64>().ok());
        let Some(checkpoint) = names.iter().filter(|n| n.contains(".checkpoint.")).filter_map(|n| version(n)).max()
        else {
            continue;
        };
        for name in names.iter().filter(|n| n.ends_with(".json") && version(n).is_some_and(|v| v < checkpoint)) {
            std::fs::remove_file(log.join(name)).expect("remove a commit file");
            removed += 1;
        }
    }
    removed
}
