//! Incremental materialisation gives the same marts as a full rebuild, also when later parts of the data
//! are full of late events, and recomputes only the years the new events touch.

use std::io::Write;
use std::path::{Path, PathBuf};

use permitflow_e2e::{ingest, rows, same_value};
use permitflow_gen::{GenConfig, generate};
use permitflow_metrics::{MODELS, MetricsConfig, Rebuild, Scope, materialize, session};
use permitflow_warehouse::Warehouse;

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
    for model in MODELS {
        out.push((model.name.to_string(), rows(&ctx, &format!("SELECT * FROM {}", model.name)).await));
    }
    out
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test]
async fn incremental_materialisation_of_parts_with_late_events_equals_a_full_rebuild() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = GenConfig {
        start_year: 2017,
        years: 2,
        scale: 0.01,
        duplicate_share: 0.01,
        late_share: 0.02,
        malformed_share: 0.005,
        ..GenConfig::default()
    };
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

    for ((name, incremental_rows), (_, full_rows)) in marts(&incremental).await.into_iter().zip(marts(&full).await) {
        assert!(!full_rows.is_empty() || name == "data_quality", "{name} is empty");
        assert_eq!(incremental_rows.len(), full_rows.len(), "{name}: row count");
        for (a, b) in incremental_rows.iter().zip(&full_rows) {
            let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y, 1e-9));
            assert!(same, "{name}: incremental row {a:?} differs from the full rebuild's {b:?}");
        }
    }
}
