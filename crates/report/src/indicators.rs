//! The indicators of one period against the agreement's targets: one row per indicator and scope, as
//! `permitflow report --format table|csv|json` prints them and the HTML report shows them.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type};
use datafusion::prelude::SessionContext;

use crate::{ReportError, query};

/// Output format of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// The report's rows: indicator, scope, value, target, how the value must compare, and the verdict. Targets
/// come from the marts (which take them from the targets file) and from `backlog_target`.
const REPORT_SQL: &str = "
WITH rows AS (
  SELECT 1 AS n, 'decisions per person-year' AS indicator, 'agency' AS scope, decisions_per_person_year AS value,
         CAST(NULL AS DOUBLE) AS target, '' AS rule
  FROM decisions_per_person_year WHERE period_type = $type AND period = $period AND scope = 'agency'
  UNION ALL
  SELECT 2, 'cost recovery %', CASE WHEN scope = 'agency' THEN 'fee-based work' ELSE scope_value END,
         cost_recovery_pct, NULL, ''
  FROM cost_recovery WHERE period_type = $type AND period = $period
  UNION ALL
  SELECT 3, 'backlog at end of period', permit_type, CAST(pending_at_end AS DOUBLE), NULL, ''
  FROM backlog WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 4, 'backlog change since year start %', permit_type, change_since_year_start_pct,
         (SELECT change_pct FROM backlog_target), '<='
  FROM backlog WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 5, 'processing time, median days', permit_type, median_days, target_days, '<='
  FROM processing_times WHERE period_type = $type AND period = $period AND target_days IS NOT NULL
  UNION ALL
  SELECT 6, 'processing time, share within target', permit_type, within_target_share, NULL, ''
  FROM processing_times WHERE period_type = $type AND period = $period AND target_days IS NOT NULL
  UNION ALL
  SELECT 7, 'identification appointment wait, median days', service_point, median_days, target_days, '<='
  FROM appointment_wait WHERE period_type = $type AND period = $period AND service_point = 'all'
  UNION ALL
  SELECT 8, 'e-service share of applications', permit_type, e_service_share, NULL, ''
  FROM channel_automation WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 9, 'automated share of decisions', permit_type, automated_share, NULL, ''
  FROM channel_automation WHERE period_type = $type AND period = $period AND permit_type = 'all'
  UNION ALL
  SELECT 10, 'appeals returned for a legal error (year)', permit_type, returned_legal_error_share,
         legal_error_target, '<'
  FROM appeal_returns WHERE period = substr($period, 1, 4) AND legal_error_target IS NOT NULL
  UNION ALL
  SELECT 11, 'appeals returned for the assessment of facts (year)', permit_type, returned_fact_assessment_share,
         fact_assessment_target, '<'
  FROM appeal_returns WHERE period = substr($period, 1, 4) AND fact_assessment_target IS NOT NULL
)
SELECT indicator, scope, value, rule || CAST(target AS VARCHAR) AS target,
       CASE WHEN target IS NULL THEN ''
            WHEN value IS NULL THEN 'no data'
            WHEN (rule = '<=' AND value <= target) OR (rule = '<' AND value < target) THEN 'met'
            ELSE 'MISSED' END AS status
FROM rows ORDER BY n, scope";

/// A period of the marts: a year or a month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// `2024` or `2024-03`.
    pub text: String,
    /// `year` or `month` (the marts' `period_type`).
    pub kind: &'static str,
}

impl Period {
    /// Parses `2024` or `2024-03`, refusing anything else.
    pub fn parse(period: &str) -> Result<Period, ReportError> {
        let valid_year = |y: &str| y.len() == 4 && y.bytes().all(|b| b.is_ascii_digit());
        let kind = match period.split_once('-') {
            None if valid_year(period) => "year",
            Some((year, month))
                if valid_year(year) && matches!(month.parse::<u8>(), Ok(1..=12)) && month.len() == 2 =>
            {
                "month"
            }
            _ => {
                return Err(ReportError::Period(format!(
                    "--period {period}: expected a year (2024) or a month (2024-03)"
                )));
            }
        };
        Ok(Period { text: period.to_string(), kind })
    }

    /// The period's last month, `YYYY-MM`.
    pub fn last_month(&self) -> String {
        match self.kind {
            "year" => format!("{}-12", self.text),
            _ => self.text.clone(),
        }
    }

    /// The period's first month, `YYYY-MM`.
    pub fn first_month(&self) -> String {
        match self.kind {
            "year" => format!("{}-01", self.text),
            _ => self.text.clone(),
        }
    }
}

/// One indicator in one scope.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorRow {
    /// What is measured.
    pub indicator: String,
    /// `agency`, a permit type, a service point…
    pub scope: String,
    /// The figure (`None`: no data).
    pub value: Option<f64>,
    /// The target with its comparison (`<=30`), empty when there is none.
    pub target: String,
    /// `met`, `MISSED`, `no data`, or empty when there is no target.
    pub status: String,
}

impl IndicatorRow {
    /// The figure as every format prints it (three decimals; empty without data).
    pub fn value_text(&self) -> String {
        self.value.map(|v| format!("{v:.3}")).unwrap_or_default()
    }

    /// Whether the figure misses its target.
    pub fn missed(&self) -> bool {
        self.status == "MISSED"
    }
}

/// The indicators of a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Indicators {
    /// The period.
    pub period: Period,
    /// The rows, in the report's order.
    pub rows: Vec<IndicatorRow>,
}

impl Indicators {
    /// Number of missed targets.
    pub fn missed(&self) -> usize {
        self.rows.iter().filter(|r| r.missed()).count()
    }
}

/// The latest year in the marts.
pub(crate) async fn latest_year(ctx: &SessionContext) -> Result<String, ReportError> {
    let batches = query(ctx, "SELECT max(period) FROM decisions_per_person_year WHERE period_type = 'year'").await?;
    let latest = batches.first().and_then(|b| {
        let column = arrow::compute::cast(b.column(0), &DataType::Utf8).ok()?;
        (!column.is_null(0)).then(|| column.as_string::<i32>().value(0).to_string())
    });
    latest.ok_or_else(|| {
        ReportError::NoData("the marts are empty: ingest events and run `permitflow materialize` first".into())
    })
}

/// The indicators of `period` (default: the last year in the marts).
pub async fn indicators(ctx: &SessionContext, period: Option<&str>) -> Result<Indicators, ReportError> {
    let latest = latest_year(ctx).await?;
    let period = Period::parse(period.unwrap_or(&latest))?;
    let sql =
        REPORT_SQL.replace("$type", &format!("'{}'", period.kind)).replace("$period", &format!("'{}'", period.text));
    let batches = query(ctx, &sql).await?;
    let rows = batches.iter().map(rows_of).collect::<Result<Vec<_>, _>>()?.concat();
    if rows.is_empty() {
        return Err(ReportError::NoData(format!(
            "no figures for {} {}: the marts cover periods up to {latest} (see `permitflow query`)",
            period.kind, period.text
        )));
    }
    Ok(Indicators { period, rows })
}

fn rows_of(batch: &RecordBatch) -> Result<Vec<IndicatorRow>, ReportError> {
    let text = |i: usize| -> Result<Vec<String>, ReportError> {
        let column = arrow::compute::cast(batch.column(i), &DataType::Utf8)?;
        let column = column.as_string::<i32>();
        Ok((0..column.len())
            .map(|row| if column.is_null(row) { String::new() } else { column.value(row).into() })
            .collect())
    };
    let (indicator, scope, target, status) = (text(0)?, text(1)?, text(3)?, text(4)?);
    let value = arrow::compute::cast(batch.column(2), &DataType::Float64)?;
    let value = value.as_primitive::<Float64Type>();
    Ok((0..batch.num_rows())
        .map(|row| IndicatorRow {
            indicator: indicator[row].clone(),
            scope: scope[row].clone(),
            value: (!value.is_null(row)).then(|| value.value(row)),
            target: target[row].clone(),
            status: status[row].clone(),
        })
        .collect())
}

/// The indicators as text in `format`.
pub fn render(indicators: &Indicators, format: Format) -> String {
    let period = &indicators.period.text;
    let rows: Vec<[String; 5]> = indicators
        .rows
        .iter()
        .map(|r| [r.indicator.clone(), r.scope.clone(), r.value_text(), r.target.clone(), r.status.clone()])
        .collect();
    let header = ["indicator", "scope", "value", "target", "status"];
    match format {
        Format::Table => {
            let widths: Vec<usize> = (0..5)
                .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].len()]).max().unwrap_or(0))
                .collect();
            let line = |cells: [&str; 5]| {
                let cells: Vec<String> = cells
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (c, w))| if i == 2 { format!("{c:>w$}") } else { format!("{c:<w$}") })
                    .collect();
                cells.join("  ").trim_end().to_string()
            };
            let mut out = format!("Indicators for {period} against the targets of the performance agreement\n\n");
            out.push_str(&line(header));
            out.push('\n');
            for row in &rows {
                out.push_str(&line([&row[0], &row[1], &row[2], &row[3], &row[4]]));
                out.push('\n');
            }
            out.push_str(&format!("\n{} target(s) MISSED\n", indicators.missed()));
            out
        }
        Format::Csv => {
            let mut out = format!("period,{}\n", header.join(","));
            for row in &rows {
                let quoted: Vec<String> =
                    row.iter().map(|c| if c.contains(',') { format!("\"{c}\"") } else { c.clone() }).collect();
                out.push_str(&format!("{period},{}\n", quoted.join(",")));
            }
            out
        }
        Format::Json => {
            let mut out = String::new();
            for (row, typed) in rows.iter().zip(&indicators.rows) {
                let value = row[2].parse::<f64>().ok().filter(|_| typed.value.is_some());
                let object = serde_json::json!({
                    "period": period, "indicator": row[0], "scope": row[1], "value": value,
                    "target": row[3], "status": row[4],
                });
                out.push_str(&object.to_string());
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_years_or_months() {
        assert_eq!(Period::parse("2024").expect("year").kind, "year");
        let month = Period::parse("2024-03").expect("month");
        assert_eq!(
            (month.kind, month.first_month(), month.last_month()),
            ("month", "2024-03".into(), "2024-03".into())
        );
        assert_eq!(Period::parse("2024").expect("year").last_month(), "2024-12");
        for bad in ["2024-13", "24", "2024-3", "2024'; DROP", "2024-03-01"] {
            let err = Period::parse(bad).expect_err(bad).to_string();
            assert!(err.contains("--period"), "{err}");
        }
    }

    #[test]
    fn missed_targets_are_counted_and_printed_in_every_format() {
        let row = |status: &str, value: Option<f64>| IndicatorRow {
            indicator: "processing time, median days".into(),
            scope: "family".into(),
            value,
            target: "<=270".into(),
            status: status.into(),
        };
        let indicators = Indicators {
            period: Period::parse("2024").expect("year"),
            rows: vec![row("MISSED", Some(301.25)), row("met", Some(12.0)), row("no data", None)],
        };
        assert_eq!(indicators.missed(), 1);
        let table = render(&indicators, Format::Table);
        assert!(table.contains("301.250") && table.ends_with("1 target(s) MISSED\n"), "{table}");
        let csv = render(&indicators, Format::Csv);
        assert_eq!(csv.lines().nth(1), Some("2024,\"processing time, median days\",family,301.250,<=270,MISSED"));
        let json = render(&indicators, Format::Json);
        let last: serde_json::Value = serde_json::from_str(json.lines().nth(2).expect("three lines")).expect("json");
        assert_eq!(last["value"], serde_json::Value::Null);
    }
}
