//! The `permitflow` binary as users run it: output, errors, a file ingest and a compaction killed again
//! and again, and a warehouse on S3 (moto's server) and on Azure Blob Storage (Azurite), both started by the
//! test kit on loopback.

use std::borrow::BorrowMut;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use permitflow_testkit::{Azurite, S3Server, duckdb_indicators, set_immutable};

const KEY: &str = "cli-test-key-0123456789";

fn permitflow(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_permitflow"));
    command.args(args).env_remove("PERMITFLOW__PRIVACY__KEY").env("RUST_LOG", "warn");
    command
}

fn run(mut command: impl BorrowMut<Command>) -> Output {
    command.borrow_mut().output().expect("run permitflow")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[track_caller]
fn ok(command: impl BorrowMut<Command>) -> String {
    let output = run(command);
    assert!(output.status.success(), "failed: {}\n{}", stdout(&output), stderr(&output));
    stdout(&output)
}

fn generate(dir: &Path, scale: &str) -> std::path::PathBuf {
    let out = dir.join("input");
    let out_arg = out.display().to_string();
    ok(permitflow(&["generate", "--out", &out_arg, "--scale", scale, "--duplicates", "0.01", "--malformed", "0.002"]));
    out
}

#[test]
fn demo_prints_the_indicators_and_says_it_uses_the_development_key() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = dir.path().join("wh").display().to_string();
    let input = dir.path().join("in").display().to_string();
    let page = dir.path().join("report.html");
    let page_arg = page.display().to_string();
    let demo = [
        "demo",
        "--warehouse",
        &warehouse,
        "--input",
        &input,
        "--scale",
        "0.02",
        "--years",
        "1",
        "--report",
        &page_arg,
    ];
    let out = ok(permitflow(&demo));
    assert!(out.contains("development key"), "{out}");
    assert!(out.contains(&format!("situation picture (open in a browser): {page_arg}")), "{out}");
    let html = std::fs::read_to_string(&page).expect("the demo writes the report");
    assert!(
        html.contains("Situation picture: 2017") && html.contains("No forecast"),
        "one year is too short to forecast"
    );
    assert!(out.contains("decisions per person-year"), "{out}");
    assert!(out.contains("cost recovery"), "{out}");
    let reconciled = out.lines().find(|l| l.starts_with("ingested in")).expect("a reconciliation line");
    let numbers: Vec<u64> = reconciled.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers.len(), 3, "{reconciled}");
    assert_eq!(numbers[0], numbers[1] + numbers[2], "read = accepted + rejected: {reconciled}");
    assert!(numbers[2] > 0, "the demo includes bad lines: {reconciled}");
    assert!(Path::new(&warehouse).join("marts/decisions_per_person_year/year=2017/data.parquet").exists());

    let again = ok(permitflow(&demo));
    assert!(again.contains("already ingested"), "{again}");
    assert!(again.contains("nothing to do"), "the marts already cover every commit: {again}");

    let report = ok(permitflow(&["report", "--warehouse", &warehouse, "--period", "2017"]));
    assert!(report.contains("Indicators for 2017"), "{report}");
    for indicator in ["processing time, median days", "identification appointment wait", "appeals returned"] {
        assert!(report.contains(indicator), "{indicator}: {report}");
    }
    let missed = report.lines().filter(|l| l.ends_with("  MISSED")).count();
    assert!(report.contains(&format!("{missed} target(s) MISSED")), "the summary counts the marked rows: {report}");
    let csv = ok(permitflow(&["report", "--warehouse", &warehouse, "--period", "2017-03", "--format", "csv"]));
    assert!(csv.starts_with("period,indicator,scope,value,target,status\n2017-03,"), "{csv}");
    let json = ok(permitflow(&["report", "--warehouse", &warehouse, "--period", "2017", "--format", "json"]));
    assert!(json.lines().all(|l| l.starts_with("{\"") && l.contains("\"period\":\"2017\"")), "{json}");
    let output = run(permitflow(&["report", "--warehouse", &warehouse, "--period", "2031"]));
    assert!(!output.status.success() && stderr(&output).contains("no figures for year 2031"), "{}", stderr(&output));
}

#[test]
fn ingest_without_a_key_says_how_to_set_one() {
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.001");
    let output = run(permitflow(&["ingest", "--warehouse", &dir.path().join("wh").display().to_string()]).arg(&input));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("PERMITFLOW__PRIVACY__KEY"), "{}", stderr(&output));
}

#[test]
fn a_missing_input_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("nope.ndjson").display().to_string();
    let output = run(permitflow(&["ingest", "--warehouse", &dir.path().join("wh").display().to_string(), &missing])
        .env("PERMITFLOW__PRIVACY__KEY", KEY));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("nope.ndjson"), "{}", stderr(&output));
}

#[test]
fn a_config_file_typo_is_named_in_the_error() {
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("permitflow.toml");
    std::fs::write(&config, "[warehouse]\npth = \"x\"\n").expect("write config");
    let output = run(permitflow(&["--config", &config.display().to_string(), "materialize"]));
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(err.contains("permitflow.toml") && err.contains("pth"), "{err}");
}

#[test]
fn query_prints_a_table_and_sql_errors_are_reported() {
    let dir = tempfile::tempdir().expect("dir");
    let wh = dir.path().join("wh").display().to_string();
    let input = generate(dir.path(), "0.002");
    ok(permitflow(&["ingest", "--warehouse", &wh]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    let out = ok(permitflow(&["query", "--warehouse", &wh, "SELECT count(*) AS rejected FROM _rejections"]));
    assert!(out.contains("| rejected |"), "{out}");
    let output = run(permitflow(&["query", "--warehouse", &wh, "SELECT nope FROM decisions"]));
    assert!(!output.status.success());
    assert!(stderr(&output).contains("nope"), "{}", stderr(&output));
}

#[test]
fn sql_runs_statements_and_shell_commands_of_datafusion_cli_over_the_warehouse() {
    let dir = tempfile::tempdir().expect("dir");
    let wh = dir.path().join("wh").display().to_string();
    let input = generate(dir.path(), "0.002");
    ok(permitflow(&["ingest", "--warehouse", &wh]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    ok(permitflow(&["materialize", "--warehouse", &wh]));
    let count = "SELECT count(*) AS n FROM decisions";
    let expected = ok(permitflow(&["query", "--warehouse", &wh, count]));
    let expected: String = expected.chars().filter(char::is_ascii_digit).collect();
    assert!(expected.parse::<u64>().expect("a count") > 0);
    let out = ok(permitflow(&["sql", "--warehouse", &wh, "-q", "--format", "csv", "-c", count]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["n", expected.as_str()]);
    // datafusion-cli's own command: the tables, Delta event tables and Parquet marts alike.
    let tables = ok(permitflow(&["sql", "--warehouse", &wh, "-q", "-c", "\\d"]));
    for table in ["decisions", "_rejections", "decisions_per_person_year"] {
        assert!(tables.contains(table), "{table} missing from:\n{tables}");
    }
    let script = dir.path().join("q.sql");
    std::fs::write(&script, format!("-- a comment\n{count};\n")).expect("write");
    let out = ok(permitflow(&["sql", "--warehouse", &wh, "-q", "--format", "csv", "-f"]).arg(&script));
    assert_eq!(out.lines().last(), Some(expected.as_str()));
    let output = run(permitflow(&["sql", "--warehouse", &wh, "-f", "missing.sql"]));
    assert!(!output.status.success() && stderr(&output).contains("missing.sql: no such SQL file"));
}

/// Table row counts, rejections and marts: what a finished warehouse holds (`env`: of its object store).
fn fingerprint(wh: &str, env: &[(&str, String)]) -> String {
    ok(permitflow(&["materialize", "--warehouse", wh]).envs(env.iter().cloned()));
    let mut out = String::new();
    for sql in [
        "SELECT 'applications', count(*), count(DISTINCT event_id) FROM applications
         UNION ALL SELECT 'decisions', count(*), count(DISTINCT event_id) FROM decisions
         UNION ALL SELECT 'appeals', count(*), count(DISTINCT event_id) FROM appeals
         UNION ALL SELECT 'staff', count(*), count(DISTINCT event_id) FROM staff
         UNION ALL SELECT 'costs', count(*), count(DISTINCT event_id) FROM costs
         UNION ALL SELECT 'appointments', count(*), count(DISTINCT event_id) FROM appointments
         UNION ALL SELECT '_rejections', count(*), count(DISTINCT source_offset) FROM _rejections
         ORDER BY 1",
        // Sums of doubles depend on the order rows are added in, which depends on how files were split.
        "SELECT period_type, period, scope, scope_value, decisions, round(person_years, 9),
                round(decisions_per_person_year, 6)
         FROM decisions_per_person_year ORDER BY period_type, period, scope, scope_value",
        "SELECT period_type, period, scope, scope_value, round(fee_revenue_eur, 6), round(direct_cost_eur, 6),
                round(overhead_cost_eur, 6), round(cost_recovery_pct, 6)
         FROM cost_recovery ORDER BY period_type, period, scope, scope_value",
    ] {
        out.push_str(&ok(permitflow(&["query", "--warehouse", wh, sql]).envs(env.iter().cloned())));
    }
    out
}

#[test]
fn gzip_zstd_and_byte_order_marked_files_store_what_the_plain_file_stores() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.002");
    let plain_file = std::fs::read_dir(&input).expect("input").next().expect("a file").expect("entry").path();
    let plain = std::fs::read(&plain_file).expect("read");
    let mut with_bom = b"\xEF\xBB\xBF".to_vec();
    with_bom.extend_from_slice(&plain);
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&with_bom).expect("gzip");
    let variants = [
        ("events.ndjson.gz", gzip.finish().expect("gzip")),
        // Named like a plain file: the first bytes decide.
        ("events.ndjson", zstd::encode_all(&plain[..], 3).expect("zstd")),
        ("bom.ndjson", with_bom),
    ];
    let reference = dir.path().join("plain").display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &reference]).arg(&plain_file).env("PERMITFLOW__PRIVACY__KEY", KEY));
    let expected = fingerprint(&reference, &[]);
    for (name, content) in variants {
        let variant = dir.path().join(format!("in-{name}"));
        std::fs::create_dir(&variant).expect("dir");
        std::fs::write(variant.join(name), content).expect("write");
        let wh = dir.path().join(format!("wh-{name}")).display().to_string();
        let out = ok(permitflow(&["ingest", "--warehouse", &wh]).arg(&variant).env("PERMITFLOW__PRIVACY__KEY", KEY));
        assert!(out.contains("accepted"), "{name}: {out}");
        assert_eq!(fingerprint(&wh, &[]), expected, "{name}");
        let again = ok(permitflow(&["ingest", "--warehouse", &wh]).arg(&variant).env("PERMITFLOW__PRIVACY__KEY", KEY));
        assert!(again.contains("already ingested"), "{name}: {again}");
    }
}

#[test]
fn ingest_killed_again_and_again_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.2");
    let clean = dir.path().join("clean").display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &clean]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));

    let killed = dir.path().join("killed").display().to_string();
    // Kill at varying moments: before, during and between batch commits.
    let kills = kill_again_and_again(
        "ingest",
        u32::MAX,
        |kills| Duration::from_millis(150 + 97 * u64::from(kills % 7)),
        || {
            let mut command = permitflow(&["ingest", "--warehouse", &killed]);
            command.arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY).env("PERMITFLOW__INGEST__BATCH_LINES", "1000");
            command
        },
    );
    assert!(kills >= 5, "only {kills} kills: the input is too small to exercise recovery");
    assert_eq!(fingerprint(&killed, &[]), fingerprint(&clean, &[]));
}

/// Runs `command` again and again, SIGKILLed after `pause(kills so far)` unless it finished first (then it
/// must have succeeded), until it finishes or was killed `max_kills` times, within 10 minutes; returns the
/// number of kills.
fn kill_again_and_again(
    what: &str,
    max_kills: u32,
    pause: impl Fn(u32) -> Duration,
    mut command: impl FnMut() -> Command,
) -> u32 {
    let mut kills = 0;
    let started = Instant::now();
    while kills < max_kills {
        assert!(started.elapsed() < Duration::from_secs(600), "{what}: only {kills} kills in 10 minutes");
        let mut child = command().stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn");
        std::thread::sleep(pause(kills));
        if let Some(status) = child.try_wait().expect("poll") {
            assert!(status.success(), "{what} failed after {kills} kills");
            break;
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        kills += 1;
    }
    kills
}

/// Partitions of the event tables and `_rejections` with the number of files each has in the tables'
/// snapshots.
fn files_per_partition(warehouse: &Path) -> Vec<(String, usize)> {
    let warehouse = permitflow_warehouse::Warehouse::open(warehouse).expect("open the warehouse");
    let mut partitions = std::collections::BTreeMap::new();
    for file in warehouse.files().expect("files") {
        let partition = file.path.rsplit_once('/').map_or(String::new(), |(dir, _)| dir.to_string());
        *partitions.entry(partition).or_insert(0) += 1;
    }
    partitions.into_iter().collect()
}

#[test]
fn compaction_killed_again_and_again_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().expect("dir");
    // Ten years: 721 month partitions, rewritten 16 to a commit.
    let input = dir.path().join("input");
    let input_arg = input.display().to_string();
    ok(permitflow(&["generate", "--out", &input_arg, "--scale", "0.1", "--years", "10", "--malformed", "0.002"]));
    // Four interleaved parts: every month of every table gets a file from each.
    let parts = dir.path().join("parts");
    std::fs::create_dir_all(&parts).expect("mkdir");
    let mut lines = Vec::new();
    for entry in std::fs::read_dir(&input).expect("input").flatten() {
        let text = std::fs::read(entry.path()).expect("read");
        lines.extend(text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    for part in 0..4 {
        let text: Vec<u8> = lines.iter().skip(part).step_by(4).flat_map(|l| l.iter().chain(b"\n")).copied().collect();
        std::fs::write(parts.join(format!("part{part}.ndjson")), text).expect("write part");
    }
    let wh = dir.path().join("wh");
    let wh_arg = wh.display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &wh_arg]).arg(&parts).env("PERMITFLOW__PRIVACY__KEY", KEY));
    let before = fingerprint(&wh_arg, &[]);
    let files_before: usize = files_per_partition(&wh).iter().map(|(_, n)| n).sum();

    // Kill at varying moments: while rewriting, between commits, while checkpointing.
    let kills = kill_again_and_again(
        "compact",
        12,
        |kills| Duration::from_millis(150 + 137 * u64::from(kills % 9)),
        || permitflow(&["compact", "--warehouse", &wh_arg, "--min-files", "2"]),
    );
    let last = ok(permitflow(&["compact", "--warehouse", &wh_arg, "--min-files", "2"]));
    assert!(kills >= 5, "only {kills} kills: the warehouse is too small to exercise recovery ({last})");
    let partitions = files_per_partition(&wh);
    assert!(partitions.iter().all(|(_, n)| *n == 1), "one file per partition: {partitions:?}");
    assert!(partitions.len() * 3 < files_before, "{} partitions held {files_before} files", partitions.len());
    ok(permitflow(&["materialize", "--warehouse", &wh_arg, "--full"]));
    assert_eq!(fingerprint(&wh_arg, &[]), before, "after {kills} kills");
}

/// A moto S3 server with the bucket `warehouse`.
fn s3_server() -> S3Server {
    let server = S3Server::start().unwrap_or_else(|e| panic!("{e}"));
    server.create_bucket("warehouse").unwrap_or_else(|e| panic!("{e}"));
    server
}

/// DuckDB's indicators (each as its sorted rows, numbers to ten digits) and mart row counts over a
/// warehouse, as lines.
fn duckdb_view(wh: &str, env: &[(&str, String)]) -> Vec<String> {
    let output = duckdb_indicators(wh, env).unwrap_or_else(|e| panic!("{e}"));
    let view: serde_json::Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));
    let mut lines: Vec<String> =
        view["marts"].as_object().expect("marts").iter().map(|(k, v)| format!("{k} {v}")).collect();
    for (name, rows) in view["indicators"].as_object().expect("indicators") {
        // Sums of doubles depend on the order rows are added in, which depends on how files were cut.
        let value = |v: &serde_json::Value| v.as_f64().map_or_else(|| v.to_string(), |f| format!("{f:.9e}"));
        lines.extend(rows.as_array().expect("rows").iter().map(|row| {
            let values: Vec<String> = row.as_array().expect("a row").iter().map(value).collect();
            format!("{name} {}", values.join(" "))
        }));
    }
    lines.sort();
    lines
}

/// Ingests `input` into the object-store warehouse `url` in small batches (several files per partition,
/// for a compaction after), then again, which stores nothing.
fn ingest_twice(url: &str, input: &Path, env: &[(&str, String)]) {
    let ingest = || {
        let mut command = permitflow(&["ingest", "--warehouse", url]);
        command.arg(input).env("PERMITFLOW__PRIVACY__KEY", KEY).env("PERMITFLOW__INGEST__BATCH_LINES", "3000");
        ok(command.envs(env.iter().cloned()))
    };
    let first = ingest();
    assert!(first.contains("accepted"), "{first}");
    let again = ingest();
    assert!(again.contains("already ingested"), "a second ingest stores nothing again: {again}");
}

/// Compacts every partition of `url` with two files or more.
fn compact_all(url: &str, env: &[(&str, String)]) {
    let compacted =
        ok(permitflow(&["compact", "--warehouse", url, "--all", "--min-files", "2"]).envs(env.iter().cloned()));
    assert!(compacted.contains("compacted"), "{compacted}");
}

#[test]
fn a_warehouse_on_s3_holds_what_one_on_local_disk_holds_for_permitflow_and_for_duckdb() {
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.02");
    let s3 = s3_server();
    let env = s3.env();
    let url = "s3://warehouse/permitflow";
    let local = dir.path().join("local").display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &local]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    ingest_twice(url, &input, &env);
    assert!(!Path::new("s3:").exists(), "the URL is not taken for a local path");
    assert_eq!(fingerprint(url, &env), fingerprint(&local, &[]), "permitflow reads the same from both");
    compact_all(url, &env);
    ok(permitflow(&["materialize", "--warehouse", url, "--full"]).envs(env.iter().cloned()));
    assert_eq!(fingerprint(url, &env), fingerprint(&local, &[]), "compaction on S3 changes no figure");
    let duck = duckdb_view(url, &env);
    assert!(duck.iter().any(|line| line.starts_with("inflow_month ")), "DuckDB reads the tables on S3: {duck:?}");
    assert!(duck.iter().any(|line| line.starts_with("inflow ") && line != "inflow 0"), "and the marts: {duck:?}");
    let local = duckdb_view(&local, &[]);
    let differing: Vec<(&String, &String)> = duck.iter().zip(&local).filter(|(a, b)| a != b).take(5).collect();
    assert!(differing.is_empty() && duck.len() == local.len(), "DuckDB reads the same from both: {differing:?}");
}

#[test]
fn a_warehouse_on_azure_blob_storage_holds_what_one_on_local_disk_holds() {
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.01");
    let azurite = Azurite::start().unwrap_or_else(|e| panic!("{e}"));
    azurite.create_container("warehouse").unwrap_or_else(|e| panic!("{e}"));
    let env = azurite.env();
    let url = "az://warehouse/permitflow";
    let local = dir.path().join("local").display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &local]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    ingest_twice(url, &input, &env);
    compact_all(url, &env);
    assert_eq!(fingerprint(url, &env), fingerprint(&local, &[]), "permitflow reads and materialises the same");
}

#[test]
fn a_warehouse_url_that_cannot_be_reached_says_what_to_check() {
    let s3 = s3_server();
    let output = run(permitflow(&["query", "--warehouse", "s3://no-such-bucket/wh", "SELECT 1"]).envs(s3.env()));
    assert!(!output.status.success());
    let error = stderr(&output);
    for needle in ["s3://no-such-bucket/wh", "bucket exists", "AWS_ENDPOINT_URL", "NoSuchBucket"] {
        assert!(error.contains(needle), "{needle} in: {error}");
    }
    let output = run(permitflow(&["query", "--warehouse", "ftp://host/wh", "SELECT 1"]));
    assert!(!output.status.success() && stderr(&output).contains("s3://"), "{}", stderr(&output));
}

#[test]
fn run_refuses_to_start_on_a_warehouse_it_cannot_write_and_says_which() {
    let dir = tempfile::tempdir().expect("dir");
    let wh = dir.path().join("wh");
    let input = generate(dir.path(), "0.002");
    ok(permitflow(&["ingest", "--warehouse"]).arg(&wh).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    set_immutable(&wh, true);
    let started = Instant::now();
    let output = run(permitflow(&["run", "--warehouse"]).arg(&wh).env("PERMITFLOW__PRIVACY__KEY", KEY));
    set_immutable(&wh, false);
    assert!(!output.status.success(), "{}", stdout(&output));
    assert!(started.elapsed() < Duration::from_secs(20), "before any Kafka call: {:?}", started.elapsed());
    let error = stderr(&output);
    for needle in [wh.display().to_string().as_str(), "_probe/", "writable"] {
        assert!(error.contains(needle), "{needle} in: {error}");
    }
}

#[test]
fn ingest_to_s3_killed_again_and_again_loses_nothing_and_stores_nothing_twice() {
    let dir = tempfile::tempdir().expect("dir");
    let input = generate(dir.path(), "0.05");
    let clean = dir.path().join("clean").display().to_string();
    ok(permitflow(&["ingest", "--warehouse", &clean]).arg(&input).env("PERMITFLOW__PRIVACY__KEY", KEY));
    let s3 = s3_server();
    let env = s3.env();
    let url = "s3://warehouse/killed";
    let kills = kill_again_and_again(
        "ingest to S3",
        u32::MAX,
        // Opening the warehouse on S3 and a commit take about 0.3–0.5 s each (moto, debug build), more on a
        // loaded machine: the pauses lengthen by 25 ms a kill, so that runs always get a batch committed.
        |kills| Duration::from_millis(600 + 151 * u64::from(kills % 7) + 25 * u64::from(kills)),
        || {
            let mut command = permitflow(&["ingest", "--warehouse", url]);
            command
                .arg(&input)
                .env("PERMITFLOW__PRIVACY__KEY", KEY)
                .env("PERMITFLOW__INGEST__BATCH_LINES", "500")
                .envs(env.iter().cloned());
            command
        },
    );
    assert!(kills >= 10, "only {kills} kills: the input is too small to exercise recovery");
    assert_eq!(fingerprint(url, &env), fingerprint(&clean, &[]), "after {kills} kills");
}
