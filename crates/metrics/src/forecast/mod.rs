//! The forecast marts, recomputed by every materialisation that changed the marts, from the marts it has just
//! written (never from the event tables):
//!
//! - `inflow_forecast`: applications per permit type (and `'all'`) for the [`HORIZON`] months after the last
//!   complete month, with 80 % and 95 % prediction intervals;
//! - `resource_forecast`: per forecast month and permit type, the person-years needed to decide the forecast
//!   inflow at the last 12 months' decisions per person-year, and the backlog projected at today's capacity
//!   beside the path of the agreement's backlog target from the year start;
//! - `forecast_accuracy`: the rolling-origin backtest of the model against seasonal naive, per permit type
//!   and horizon.
//!
//! The last complete month is the month of the latest application day when that day is one of the month's
//! last three (a month may end on a weekend without applications), else the month before. Each series (`inflow`'s month rows up to it, a missing month counting 0) is
//! forecast on its own, `'all'` too, so the types' forecasts need not add up to `'all'`. The method is in the
//! `model` module. A hash of every input is kept in `marts/_state.json`: when the inputs did not change
//! (events of the current month arrived), the forecast marts are left as they are.
//!
//! The marts are partitioned by the year of `period` (`forecast_accuracy` by the year of `trained_through`)
//! and every partition is replaced on each recomputation.

pub mod model;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{Datelike, Months, NaiveDate};
use datafusion::prelude::SessionContext;
use permitflow_warehouse::{Warehouse, register_tables};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

use crate::materialize::{MartReport, split_by_year};
use crate::{MetricsError, Targets, query_error};
pub use model::{Accuracy, Forecast, HORIZON};

/// Mart of the inflow forecast.
pub const INFLOW_FORECAST: &str = "inflow_forecast";
/// Mart of the resources and backlog the forecast inflow needs.
pub const RESOURCE_FORECAST: &str = "resource_forecast";
/// Mart of the backtest's accuracy.
pub const FORECAST_ACCURACY: &str = "forecast_accuracy";
/// The forecast marts, in the order they are written.
pub const FORECAST_MARTS: [&str; 3] = [INFLOW_FORECAST, RESOURCE_FORECAST, FORECAST_ACCURACY];

/// Month rows of the marts the forecasts read, up to the last complete month.
#[derive(Default)]
struct Inputs {
    /// `YYYY-MM` of the last complete month.
    trained_through: String,
    /// Months of the series, oldest first (through `trained_through`).
    months: Vec<NaiveDate>,
    /// Applications per month, per permit type and `'all'`.
    series: BTreeMap<String, Vec<f64>>,
    /// Per permit type and `'all'`: decisions and person-years of the last 12 complete months, and the
    /// person-years of the last complete month.
    staff: BTreeMap<String, Staff>,
    /// Per permit type and `'all'`: the backlog at the end of the last complete month and at its year start.
    backlog: BTreeMap<String, (f64, f64)>,
    /// The agreement's backlog change over a year, percent.
    backlog_target_pct: f64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Staff {
    decisions_12m: f64,
    person_years_12m: f64,
    person_years_last_month: f64,
}

impl Inputs {
    fn hash(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(model::MODEL);
        hash.update(&self.trained_through);
        for (kind, values) in &self.series {
            hash.update(kind);
            values.iter().for_each(|v| hash.update(v.to_le_bytes()));
        }
        for (kind, s) in &self.staff {
            hash.update(kind);
            for v in [s.decisions_12m, s.person_years_12m, s.person_years_last_month] {
                hash.update(v.to_le_bytes());
            }
        }
        for (kind, (end, start)) in &self.backlog {
            hash.update(kind);
            hash.update(end.to_le_bytes());
            hash.update(start.to_le_bytes());
        }
        hash.update(self.backlog_target_pct.to_le_bytes());
        hex::encode(hash.finalize())
    }
}

fn month_text(month: NaiveDate) -> String {
    month.format("%Y-%m").to_string()
}

fn parse_month(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()
}

/// Days at the end of a month that may pass without an application (a weekend and a holiday) while the
/// month still counts as complete.
const MONTH_END_GRACE_DAYS: u64 = 3;

/// The last complete month: the month of `last_day` when that day is among the month's last
/// [`MONTH_END_GRACE_DAYS`] days, else the month before.
pub fn last_complete_month(last_day: NaiveDate) -> NaiveDate {
    let month = last_day.with_day(1).expect("day 1 exists");
    let complete = (last_day + chrono::Days::new(MONTH_END_GRACE_DAYS)).month() != last_day.month();
    if complete { month } else { month - Months::new(1) }
}

async fn rows(ctx: &SessionContext, sql: &str, context: &str) -> Result<Vec<RecordBatch>, MetricsError> {
    ctx.sql(sql).await.map_err(query_error(context))?.collect().await.map_err(query_error(context))
}

/// Column `index` of `batch` as strings, integers or floats (whatever the mart stored).
fn strings(batch: &RecordBatch, index: usize) -> Result<Vec<String>, MetricsError> {
    let column = cast(batch.column(index), &DataType::Utf8)?;
    let column = column.as_string::<i32>();
    Ok((0..column.len()).map(|i| column.value(i).to_string()).collect())
}

fn floats(batch: &RecordBatch, index: usize) -> Result<Vec<f64>, MetricsError> {
    let column = cast(batch.column(index), &DataType::Float64)?;
    let column = column.as_primitive::<arrow::datatypes::Float64Type>();
    Ok((0..column.len()).map(|i| if column.is_null(i) { 0.0 } else { column.value(i) }).collect())
}

/// Reads the month rows the forecasts need from the marts just written (`None`: no complete month).
async fn read_inputs(
    warehouse: &Warehouse,
    targets: &Targets,
    last_application_day: NaiveDate,
) -> Result<Option<Inputs>, MetricsError> {
    let through = last_complete_month(last_application_day);
    let trained_through = month_text(through);
    let year_ago = month_text(through - Months::new(12));
    let ctx = SessionContext::new();
    register_tables(&ctx, warehouse)?;

    let mut series: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let inflow = rows(
        &ctx,
        &format!(
            "SELECT permit_type, period, applications FROM inflow \
             WHERE period_type = 'month' AND period <= '{trained_through}'"
        ),
        "reading the inflow mart for the forecasts",
    )
    .await?;
    let mut counts: Vec<(String, NaiveDate, f64)> = Vec::new();
    for batch in &inflow {
        let (kinds, periods, values) = (strings(batch, 0)?, strings(batch, 1)?, floats(batch, 2)?);
        for ((kind, period), value) in kinds.into_iter().zip(periods).zip(values) {
            if let Some(month) = parse_month(&period) {
                counts.push((kind, month, value));
            }
        }
    }
    let Some(first) = counts.iter().map(|(_, month, _)| *month).min() else { return Ok(None) };
    let months: Vec<NaiveDate> =
        std::iter::successors(Some(first), |m| Some(*m + Months::new(1))).take_while(|m| *m <= through).collect();
    let index: BTreeMap<NaiveDate, usize> = months.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    for (kind, month, value) in counts {
        let values = series.entry(kind).or_insert_with(|| vec![0.0; months.len()]);
        values[index[&month]] = value;
    }

    let mut staff: BTreeMap<String, Staff> = BTreeMap::new();
    let productivity = rows(
        &ctx,
        &format!(
            "SELECT CASE WHEN scope = 'agency' THEN 'all' ELSE scope_value END, period, decisions, person_years \
             FROM decisions_per_person_year WHERE period_type = 'month' AND scope IN ('agency', 'permit_type') \
             AND period > '{year_ago}' AND period <= '{trained_through}'"
        ),
        "reading the decisions_per_person_year mart for the forecasts",
    )
    .await?;
    for batch in &productivity {
        let (kinds, periods) = (strings(batch, 0)?, strings(batch, 1)?);
        let (decisions, person_years) = (floats(batch, 2)?, floats(batch, 3)?);
        for i in 0..batch.num_rows() {
            let entry = staff.entry(kinds[i].clone()).or_default();
            entry.decisions_12m += decisions[i];
            entry.person_years_12m += person_years[i];
            if periods[i] == trained_through {
                entry.person_years_last_month = person_years[i];
            }
        }
    }

    let mut backlog = BTreeMap::new();
    let pending = rows(
        &ctx,
        &format!(
            "SELECT permit_type, pending_at_end, pending_at_year_start FROM backlog \
             WHERE period_type = 'month' AND period = '{trained_through}'"
        ),
        "reading the backlog mart for the forecasts",
    )
    .await?;
    for batch in &pending {
        let (kinds, at_end, at_start) = (strings(batch, 0)?, floats(batch, 1)?, floats(batch, 2)?);
        for i in 0..batch.num_rows() {
            backlog.insert(kinds[i].clone(), (at_end[i], at_start[i]));
        }
    }
    Ok(Some(Inputs {
        trained_through,
        months,
        series,
        staff,
        backlog,
        backlog_target_pct: targets.backlog_change_target_pct,
    }))
}

/// One series' results.
struct Outlook {
    kind: String,
    forecast: Forecast,
    accuracy: Vec<Accuracy>,
}

/// The months after the last complete one.
fn forecast_months(inputs: &Inputs) -> Vec<NaiveDate> {
    let Some(last) = inputs.months.last() else { return Vec::new() };
    (1..=HORIZON as u32).map(|h| *last + Months::new(h)).collect()
}

fn inflow_forecast(inputs: &Inputs, outlooks: &[Outlook]) -> Result<RecordBatch, MetricsError> {
    let months = forecast_months(inputs);
    let mut period = Vec::new();
    let mut kind = Vec::new();
    let mut horizon = Vec::new();
    let mut values: [Vec<f64>; 5] = Default::default();
    for outlook in outlooks {
        let f = &outlook.forecast;
        for (h, month) in months.iter().enumerate() {
            period.push(month_text(*month));
            kind.push(outlook.kind.clone());
            horizon.push(h as i32 + 1);
            for (column, source) in
                values.iter_mut().zip([&f.point, &f.lower_80, &f.upper_80, &f.lower_95, &f.upper_95])
            {
                column.push(source[h]);
            }
        }
    }
    let n = period.len();
    let [point, lower_80, upper_80, lower_95, upper_95] = values;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("period", Arc::new(StringArray::from(period))),
        ("permit_type", Arc::new(StringArray::from(kind))),
        ("horizon", Arc::new(Int32Array::from(horizon))),
        ("forecast", Arc::new(Float64Array::from(point))),
        ("lower_80", Arc::new(Float64Array::from(lower_80))),
        ("upper_80", Arc::new(Float64Array::from(upper_80))),
        ("lower_95", Arc::new(Float64Array::from(lower_95))),
        ("upper_95", Arc::new(Float64Array::from(upper_95))),
        ("model", Arc::new(StringArray::from(vec![model::MODEL; n]))),
        ("trained_through", Arc::new(StringArray::from(vec![inputs.trained_through.as_str(); n]))),
    ];
    batch(columns)
}

/// The resource plan of one series (see the module documentation and `resource_forecast`'s columns).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceRow {
    /// Forecast applications of the month.
    pub forecast_applications: f64,
    /// Decisions per person-year over the 12 months through the last complete one.
    pub decisions_per_person_year: Option<f64>,
    /// Person-years of work needed to decide the month's forecast applications at that rate.
    pub person_years_needed: Option<f64>,
    /// Decisions a month at today's capacity: the last complete month's person-years at that rate.
    pub capacity_decisions: Option<f64>,
    /// Backlog at the end of the month if the forecast arrives and today's capacity decides.
    pub projected_backlog: Option<f64>,
    /// The target path: the year-start backlog changed by the target's percentage in proportion to the months
    /// passed (for a year that has not started, from its projected start).
    pub target_backlog: Option<f64>,
}

/// The resource plan for `forecast` (months `months`), given the staff and backlog figures of the last
/// complete month `through`.
pub fn resource_rows(
    forecast: &[f64],
    months: &[NaiveDate],
    through: NaiveDate,
    decisions_12m: f64,
    person_years_12m: f64,
    person_years_last_month: f64,
    backlog: Option<(f64, f64)>,
    backlog_target_pct: f64,
) -> Vec<ResourceRow> {
    let rate = (person_years_12m > 0.0).then(|| decisions_12m / person_years_12m);
    let capacity = rate.map(|rate| rate * person_years_last_month);
    let mut projected = backlog.map(|(at_end, _)| at_end);
    // The backlog each year of the forecast starts from: known for the last complete month's year, else the
    // projection at the end of the year before.
    let mut year_start: Option<(i32, f64)> =
        backlog.map(
            |(at_end, at_start)| {
                if through.month() == 12 { (through.year() + 1, at_end) } else { (through.year(), at_start) }
            },
        );
    let mut rows = Vec::with_capacity(forecast.len());
    for (value, month) in forecast.iter().zip(months) {
        projected = match (projected, capacity) {
            (Some(before), Some(capacity)) => Some((before + value - capacity).max(0.0)),
            _ => None,
        };
        let target = year_start
            .filter(|(year, _)| *year == month.year())
            .map(|(_, start)| start * (1.0 + backlog_target_pct / 100.0 * f64::from(month.month()) / 12.0));
        if month.month() == 12 {
            year_start = projected.map(|p| (month.year() + 1, p));
        }
        rows.push(ResourceRow {
            forecast_applications: *value,
            decisions_per_person_year: rate,
            person_years_needed: rate.filter(|r| *r > 0.0).map(|rate| value / rate),
            capacity_decisions: capacity,
            projected_backlog: projected,
            target_backlog: target,
        });
    }
    rows
}

fn resource_forecast(inputs: &Inputs, outlooks: &[Outlook]) -> Result<RecordBatch, MetricsError> {
    let months = forecast_months(inputs);
    let through = inputs.months.last().copied().unwrap_or_default();
    let mut period = Vec::new();
    let mut kind = Vec::new();
    let mut figures: [Vec<Option<f64>>; 6] = Default::default();
    for outlook in outlooks {
        let staff = inputs.staff.get(&outlook.kind).copied().unwrap_or_default();
        let rows = resource_rows(
            &outlook.forecast.point,
            &months,
            through,
            staff.decisions_12m,
            staff.person_years_12m,
            staff.person_years_last_month,
            inputs.backlog.get(&outlook.kind).copied(),
            inputs.backlog_target_pct,
        );
        for (row, month) in rows.iter().zip(&months) {
            period.push(month_text(*month));
            kind.push(outlook.kind.clone());
            let values = [
                Some(row.forecast_applications),
                row.decisions_per_person_year,
                row.person_years_needed,
                row.capacity_decisions,
                row.projected_backlog,
                row.target_backlog,
            ];
            for (column, value) in figures.iter_mut().zip(values) {
                column.push(value);
            }
        }
    }
    let n = period.len();
    let [applications, rate, needed, capacity, projected, target] = figures;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("period", Arc::new(StringArray::from(period))),
        ("permit_type", Arc::new(StringArray::from(kind))),
        ("forecast_applications", Arc::new(Float64Array::from(applications))),
        ("decisions_per_person_year", Arc::new(Float64Array::from(rate))),
        ("person_years_needed", Arc::new(Float64Array::from(needed))),
        ("capacity_decisions", Arc::new(Float64Array::from(capacity))),
        ("projected_backlog", Arc::new(Float64Array::from(projected))),
        ("target_backlog", Arc::new(Float64Array::from(target))),
        ("trained_through", Arc::new(StringArray::from(vec![inputs.trained_through.as_str(); n]))),
    ];
    batch(columns)
}

fn forecast_accuracy(inputs: &Inputs, outlooks: &[Outlook]) -> Result<RecordBatch, MetricsError> {
    let mut kind = Vec::new();
    let mut horizon = Vec::new();
    let mut origins = Vec::new();
    let mut figures: [Vec<Option<f64>>; 4] = Default::default();
    for outlook in outlooks {
        for a in &outlook.accuracy {
            kind.push(outlook.kind.clone());
            horizon.push(a.horizon as i32);
            origins.push(a.origins as i64);
            for (column, value) in figures.iter_mut().zip([a.mape, a.mase, a.naive_mape, a.naive_mase]) {
                column.push(value);
            }
        }
    }
    let n = kind.len();
    let [mape, mase, naive_mape, naive_mase] = figures;
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("permit_type", Arc::new(StringArray::from(kind))),
        ("horizon", Arc::new(Int32Array::from(horizon))),
        ("model", Arc::new(StringArray::from(vec![model::MODEL; n]))),
        ("origins", Arc::new(Int64Array::from(origins))),
        ("mape", Arc::new(Float64Array::from(mape))),
        ("mase", Arc::new(Float64Array::from(mase))),
        ("naive_mape", Arc::new(Float64Array::from(naive_mape))),
        ("naive_mase", Arc::new(Float64Array::from(naive_mase))),
        ("trained_through", Arc::new(StringArray::from(vec![inputs.trained_through.as_str(); n]))),
    ];
    batch(columns)
}

fn batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch, MetricsError> {
    let schema: SchemaRef = Arc::new(Schema::new(
        columns.iter().map(|(name, array)| Field::new(*name, array.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    Ok(RecordBatch::try_new(schema, columns.into_iter().map(|(_, array)| array).collect())?)
}

/// Replaces every year of mart `name` with `rows`, split by the year of `period` (`by_period`) or of
/// `trained_through`.
fn replace_mart(warehouse: &Warehouse, name: &str, rows: &RecordBatch, by_period: bool) -> Result<(), MetricsError> {
    let parts: Vec<(String, RecordBatch)> = if by_period {
        split_by_year(rows)?
    } else {
        let index = rows.schema().index_of("trained_through")?;
        let year = strings(rows, index)?.first().map(|t| t[..4].to_string());
        year.map(|y| (y, rows.clone())).into_iter().collect()
    };
    let mut keep = Vec::new();
    for (year, part) in parts {
        warehouse.write_mart_partition(name, &year, &rows.schema(), &[part])?;
        keep.push(year);
    }
    warehouse.set_mart_schema(name, &rows.schema(), &keep)?;
    Ok(())
}

/// What [`materialize_forecasts`] did.
pub(crate) struct Forecasted {
    /// Hash of the inputs, for `marts/_state.json`.
    pub(crate) input: Option<String>,
    /// The marts written (empty when the inputs had not changed).
    pub(crate) marts: Vec<MartReport>,
}

/// Recomputes the forecast marts from the marts just written, unless their inputs hash to `previous` and the
/// marts exist. Without a complete month of applications, or with too short a history, they are empty.
pub(crate) async fn materialize_forecasts(
    warehouse: &Warehouse,
    targets: &Targets,
    last_application_day: Option<NaiveDate>,
    previous: Option<&str>,
) -> Result<Forecasted, MetricsError> {
    let started = std::time::Instant::now();
    let inputs = match last_application_day {
        Some(day) => read_inputs(warehouse, targets, day).await?,
        None => None,
    };
    let input = inputs.as_ref().map(Inputs::hash);
    let exist = FORECAST_MARTS.iter().map(|name| warehouse.mart_schema_file(name)).collect::<Result<Vec<_>, _>>()?;
    if input.is_some() && input.as_deref() == previous && exist.iter().all(Option::is_some) {
        info!("forecast inputs unchanged; forecast marts kept");
        return Ok(Forecasted { input, marts: Vec::new() });
    }
    let outlooks: Vec<Outlook> = match &inputs {
        Some(inputs) => {
            let results: Vec<_> = inputs
                .series
                .par_iter()
                .map(|(kind, series)| {
                    let result = model::forecast(series).and_then(|forecast| Ok((forecast, model::backtest(series)?)));
                    (kind, result)
                })
                .collect();
            let mut outlooks = Vec::new();
            for (kind, result) in results {
                match result {
                    Ok((Some(forecast), accuracy)) => outlooks.push(Outlook { kind: kind.clone(), forecast, accuracy }),
                    Ok((None, _)) => {}
                    Err(error) => warn!(permit_type = %kind, %error, "no forecast for this permit type"),
                }
            }
            // 'all' first, then the permit types in name order.
            outlooks.sort_by_key(|o| (o.kind != "all", o.kind.clone()));
            outlooks
        }
        None => Vec::new(),
    };
    // Without inputs there are no outlooks: the marts are written empty, with their schemas.
    let none = Inputs::default();
    let inputs_or_empty = inputs.as_ref().unwrap_or(&none);
    let tables = [
        (INFLOW_FORECAST, inflow_forecast(inputs_or_empty, &outlooks)?, true),
        (RESOURCE_FORECAST, resource_forecast(inputs_or_empty, &outlooks)?, true),
        (FORECAST_ACCURACY, forecast_accuracy(inputs_or_empty, &outlooks)?, false),
    ];
    let seconds = started.elapsed().as_secs_f64();
    let mut marts = Vec::new();
    for (name, rows, by_period) in &tables {
        replace_mart(warehouse, name, rows, *by_period)?;
        // The fits serve all three marts: each is reported with an equal share of their time.
        marts.push(MartReport { name, rows: rows.num_rows(), seconds: seconds / tables.len() as f64 });
    }
    info!(series = outlooks.len(), trained_through = %inputs_or_empty.trained_through, seconds, "forecast marts written");
    Ok(Forecasted { input, marts })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn month(text: &str) -> NaiveDate {
        parse_month(text).expect("a month")
    }

    #[test]
    fn the_last_complete_month_ends_on_or_before_the_last_day() {
        let day = |text: &str| text.parse::<NaiveDate>().expect("a day");
        assert_eq!(last_complete_month(day("2024-12-31")), month("2024-12"));
        // 2022 ended on a Saturday: applications through Thursday the 29th complete the month.
        assert_eq!(last_complete_month(day("2022-12-29")), month("2022-12"));
        assert_eq!(last_complete_month(day("2024-12-28")), month("2024-11"));
        assert_eq!(last_complete_month(day("2024-02-27")), month("2024-02"));
        assert_eq!(last_complete_month(day("2025-01-01")), month("2024-12"));
    }

    /// Worked by hand: 1,200 decisions by 10 person-years in the last 12 months is 120 decisions per
    /// person-year; the last month had 0.9 person-years, so today's capacity is 108 decisions a month.
    /// Trained through 2024-10 with 500 pending at the end of October and 400 at the start of 2024:
    /// - November: 150 forecast → 150 / 120 = 1.25 person-years; backlog 500 + 150 − 108 = 542; target
    ///   400 × (1 − 0.30 × 11/12) = 290;
    /// - December: 96 forecast → 0.8 person-years; backlog 542 + 96 − 108 = 530; target 400 × 0.7 = 280;
    /// - January 2025: 60 forecast → 0.5 person-years; backlog 530 + 60 − 108 = 482; the year starts from
    ///   the projected 530, so the target is 530 × (1 − 0.30 × 1/12) = 516.75.
    #[test]
    fn person_years_needed_and_backlog_paths_worked_by_hand() {
        let months = [month("2024-11"), month("2024-12"), month("2025-01")];
        let rows = resource_rows(
            &[150.0, 96.0, 60.0],
            &months,
            month("2024-10"),
            1_200.0,
            10.0,
            0.9,
            Some((500.0, 400.0)),
            -30.0,
        );
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-9);
        for row in &rows {
            assert!(close(row.decisions_per_person_year, 120.0), "{row:?}");
            assert!(close(row.capacity_decisions, 108.0), "{row:?}");
        }
        let expected = [(1.25, 542.0, 290.0), (0.8, 530.0, 280.0), (0.5, 482.0, 516.75)];
        for (row, (needed, backlog, target)) in rows.iter().zip(expected) {
            assert!(close(row.person_years_needed, needed), "{row:?}");
            assert!(close(row.projected_backlog, backlog), "{row:?}");
            assert!(close(row.target_backlog, target), "{row:?}");
        }
    }

    #[test]
    fn a_backlog_is_never_projected_below_zero_and_no_staff_means_no_rate() {
        let months = [month("2025-01")];
        let rows = resource_rows(&[10.0], &months, month("2024-12"), 1_200.0, 10.0, 1.0, Some((20.0, 50.0)), -30.0);
        assert_eq!(rows[0].projected_backlog, Some(0.0));
        // Through December: January's year starts from December's backlog, 20.
        assert!(rows[0].target_backlog.is_some_and(|t| (t - 20.0 * (1.0 - 0.3 / 12.0)).abs() < 1e-9));
        let rows = resource_rows(&[10.0], &months, month("2024-12"), 5.0, 0.0, 0.0, None, -30.0);
        assert_eq!(rows[0].decisions_per_person_year, None);
        assert_eq!(rows[0].person_years_needed, None);
        assert_eq!(rows[0].projected_backlog, None);
        assert_eq!(rows[0].target_backlog, None);
    }
}
