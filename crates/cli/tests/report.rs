//! The situation picture as people see it: `permitflow demo` over four years writes the HTML report, which
//! headless Chromium (Debian's, driven by Playwright) opens at 1280 px and prints; the page's figures are
//! compared with the marts read by DuckDB and with `permitflow report --format json`.

use std::path::Path;
use std::process::Command;

use permitflow_testkit::check_report_in_browser;
use serde_json::Value;

fn permitflow(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_permitflow"))
        .args(args)
        .env_remove("PERMITFLOW__PRIVACY__KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run permitflow");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "permitflow {args:?} failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[track_caller]
fn assert_close(page: f64, mart: f64, what: &str) {
    assert!((page - mart).abs() <= 1e-9 * mart.abs().max(1.0), "{what}: the page shows {page}, the marts hold {mart}");
}

/// The page's rows of `table` keyed by their `data-*` attributes, with the first `data-value` as a number.
fn page_rows(result: &Value, table: &str) -> Vec<(String, f64, String)> {
    result["page"][table]
        .as_array()
        .unwrap_or_else(|| panic!("no {table} in {result}"))
        .iter()
        .map(|row| {
            let value = row["values"][0].as_str().and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
            (
                row["key"].as_str().unwrap_or_default().to_string(),
                value,
                row["status"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

#[test]
fn the_situation_picture_shows_the_marts_figures_in_a_real_browser_without_network_or_errors() {
    let dir = tempfile::tempdir().expect("dir");
    let warehouse = dir.path().join("wh");
    let (warehouse_arg, input) = (warehouse.display().to_string(), dir.path().join("in").display().to_string());
    let page = dir.path().join("situation.html");
    let page_arg = page.display().to_string();
    // 2019-2022: the temporary-protection surge of 2022 in the history, 48 months for a 24-origin backtest.
    let out = permitflow(&[
        "demo",
        "--warehouse",
        &warehouse_arg,
        "--input",
        &input,
        "--report",
        &page_arg,
        "--start-year",
        "2019",
        "--years",
        "4",
        "--scale",
        "0.03",
    ]);
    assert!(out.contains(&page_arg), "the demo prints the report's path: {out}");
    assert!(out.contains("inflow_forecast ("), "materialize writes the forecast marts: {out}");

    // `report --format html` writes the page the demo wrote.
    let again = dir.path().join("again.html");
    permitflow(&["report", "--warehouse", &warehouse_arg, "--format", "html", "--out", &again.display().to_string()]);
    assert_eq!(std::fs::read_to_string(&again).expect("written"), std::fs::read_to_string(&page).expect("written"));

    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("situation-picture.png");
    let output = check_report_in_browser(&page, &warehouse, &screenshot).expect("the browser check runs");
    let result: Value = serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));
    eprintln!("screenshot: {}", screenshot.display());
    assert!(std::fs::metadata(&screenshot).expect("screenshot saved").len() > 50_000);

    // Nothing logged, nothing thrown, nothing fetched but the page itself.
    let errors: Vec<&Value> =
        result["console"].as_array().expect("console").iter().filter(|m| m["type"] == "error").collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    assert_eq!(result["errors"], serde_json::json!([]), "page errors");
    let requests: Vec<&str> =
        result["requests"].as_array().expect("requests").iter().filter_map(Value::as_str).collect();
    assert_eq!(requests, [format!("file://{page_arg}")], "the page requests nothing but itself");

    // Every chart has data, drawn in the data colours, and fits a 1280 px window and an A4 page.
    let charts = result["charts"].as_array().expect("charts");
    let ids: Vec<&str> = charts.iter().filter_map(|c| c["id"].as_str()).collect();
    for id in [
        "forecast-all",
        "backlog",
        "processing-times",
        "appointment-wait",
        "productivity",
        "cost-recovery",
        "shares",
        "data-quality",
    ] {
        assert!(ids.contains(&id), "no chart {id} in {ids:?}");
    }
    assert!(ids.iter().filter(|id| id.starts_with("forecast-")).count() >= 10, "a forecast per permit type: {ids:?}");
    for chart in charts {
        assert!(chart["points"].as_u64() > Some(0), "a chart without data: {chart}");
        assert!(chart["coloured"].as_u64() > Some(0), "a chart draws no data: {chart}");
        assert!(chart["width"].as_f64() > Some(250.0), "a chart too narrow to read: {chart}");
    }
    assert!(result["layout"]["screen_scroll_width"].as_f64() <= Some(1280.0), "{}", result["layout"]);
    assert!(result["layout"]["print_scroll_width"].as_f64() <= Some(794.0), "{}", result["layout"]);
    assert!(result["layout"]["pdf_bytes"].as_u64() > Some(50_000), "{}", result["layout"]);

    // The figures are the marts' (read by DuckDB), and the indicator rows are `report --format json`'s.
    let marts = &result["marts"];
    let period = marts["period"].as_str().expect("a period");
    assert_eq!(period, "2022");
    let indicators = page_rows(&result, "indicator-table");
    for (key, expected) in marts["indicator-table"].as_object().expect("indicators") {
        let (indicator, scope) = key.split_once('|').expect("indicator|scope");
        let wanted = format!("indicator={indicator}|scope={scope}");
        let (_, shown, _) =
            indicators.iter().find(|(k, _, _)| *k == wanted).unwrap_or_else(|| panic!("no row {wanted}"));
        assert_close(*shown, expected.as_f64().expect("a number"), key);
    }
    let missed_processing = indicators
        .iter()
        .filter(|(k, _, status)| k.starts_with("indicator=processing time, median days") && status.contains("MISSED"))
        .count() as u64;
    assert_eq!(Some(missed_processing), marts["missed_processing_targets"].as_u64(), "missed processing-time targets");
    let json = permitflow(&["report", "--warehouse", &warehouse_arg, "--format", "json"]);
    let lines: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), indicators.len(), "the page has the rows of `report`");
    for (line, (key, shown, _)) in lines.iter().zip(&indicators) {
        assert_eq!(
            *key,
            format!(
                "indicator={}|scope={}",
                line["indicator"].as_str().unwrap_or(""),
                line["scope"].as_str().unwrap_or("")
            )
        );
        if let Some(value) = line["value"].as_f64() {
            assert_close((shown * 1000.0).round() / 1000.0, value, key);
        }
    }
    let missed = lines.iter().filter(|l| l["status"] == "MISSED").count();
    assert_eq!(result["missed_count"].as_str().map(str::trim), Some(missed.to_string().as_str()));

    let forecast = page_rows(&result, "forecast-table");
    assert_eq!(forecast.len(), 12, "twelve months ahead");
    for (key, shown, _) in &forecast {
        let month = key.strip_prefix("period=").expect("period");
        assert!(month.starts_with("2023-"), "{month}");
        assert_close(*shown, marts["forecast-table"][month].as_f64().expect("in the mart"), key);
    }
    for table in ["accuracy-table", "resource-table"] {
        let rows = page_rows(&result, table);
        assert_eq!(rows.len(), marts[table].as_object().map(|o| o.len()).unwrap_or(0), "{table}");
        for (key, shown, _) in rows {
            let permit_type = key.strip_prefix("permitType=").expect("permit type");
            match marts[table][permit_type].as_f64() {
                Some(expected) => assert_close(shown, expected, &key),
                // NULL in the mart (e.g. no MASE for a series that never changed year on year): no figure shown.
                None => assert!(shown.is_nan(), "{key}: the page shows {shown} for a NULL"),
            }
        }
    }
}
