//! The HTML report: the indicators of the period against the targets (the rows of `report --format table`),
//! the latest forecast with its backtest accuracy, the resources it needs, and the charts of each indicator
//! against its target, in one page with inline SVG and styles.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{Months, NaiveDate};
use datafusion::prelude::SessionContext;
use permitflow_metrics::forecast::{FORECAST_ACCURACY, INFLOW_FORECAST, RESOURCE_FORECAST};

use crate::charts::{self, Band, BarChart, Bars, INK, Line, PALETTE, TARGET, TimeChart};
use crate::indicators::{Indicators, Period, indicators};
use crate::{ReportError, numbers, query, texts};

/// Months of history in the time charts.
const HISTORY_MONTHS: u32 = 36;
/// Months of history in each permit type's forecast chart.
const SMALL_HISTORY_MONTHS: u32 = 24;
/// Months the forecast marts cover.
const HORIZON: u32 = permitflow_metrics::forecast::HORIZON as u32;
/// Width of the full-width charts, pixels (the page is laid out for a 1280 px window).
const WIDE: u32 = 1180;

/// A chart in the page.
struct Figure {
    /// Anchor and test id.
    id: String,
    /// The SVG document.
    svg: String,
    /// Data points drawn.
    points: usize,
    /// What the chart shows, under it.
    caption: String,
}

struct ForecastRow {
    period: String,
    forecast: String,
    forecast_value: f64,
    interval_80: String,
    interval_95: String,
}

struct AccuracyRow {
    permit_type: String,
    mase: String,
    naive_mase: String,
    mape: String,
    naive_mape: String,
    beats_naive: bool,
    mase_value: f64,
}

struct ResourceRow {
    permit_type: String,
    applications: String,
    rate: String,
    person_years: String,
    person_years_value: f64,
    capacity: String,
    projected: String,
    target: String,
    above_target: bool,
}

#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    period: &'a Period,
    source: &'a str,
    indicators: &'a Indicators,
    trained_through: Option<String>,
    model: String,
    main_forecast: Option<Figure>,
    forecast_rows: Vec<ForecastRow>,
    all_accuracy: Option<AccuracyRow>,
    type_forecasts: Vec<Figure>,
    accuracy_rows: Vec<AccuracyRow>,
    resource_rows: Vec<ResourceRow>,
    figures: Vec<Figure>,
}

fn month(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok()
}

fn months_between(first: NaiveDate, last: NaiveDate) -> Vec<String> {
    std::iter::successors(Some(first), |m| Some(*m + Months::new(1)))
        .take_while(|m| *m <= last)
        .map(|m| m.format("%Y-%m").to_string())
        .collect()
}

/// Values of `(period, value)` rows placed on `months` (`None` where a month has no row).
fn on_months(months: &[String], periods: &[Option<String>], values: &[Option<f64>]) -> Vec<Option<f64>> {
    let by_month: BTreeMap<&str, Option<f64>> =
        periods.iter().zip(values).filter_map(|(p, v)| Some((p.as_deref()?, *v))).collect();
    months.iter().map(|m| by_month.get(m.as_str()).copied().flatten()).collect()
}

/// The `(period, value)` rows of one permit type (`kinds` per row) placed on `months`.
fn on_months_of(
    months: &[String],
    kind: &str,
    kinds: &[Option<String>],
    periods: &[Option<String>],
    values: &[Option<f64>],
) -> Vec<Option<f64>> {
    let (periods, values): (Vec<Option<String>>, Vec<Option<f64>>) = kinds
        .iter()
        .zip(periods)
        .zip(values)
        .filter(|((k, _), _)| k.as_deref() == Some(kind))
        .map(|((_, p), v)| (p.clone(), *v))
        .unzip();
    on_months(months, &periods, &values)
}

async fn monthly(ctx: &SessionContext, sql: &str, months: &[String]) -> Result<Vec<Option<f64>>, ReportError> {
    let batches = query(ctx, sql).await?;
    Ok(on_months(months, &texts(&batches, 0)?, &numbers(&batches, 1)?))
}

fn fixed(value: Option<f64>, decimals: usize) -> String {
    value.map(|v| format!("{v:.decimals$}")).unwrap_or_else(|| "–".into())
}

fn percent(value: Option<f64>) -> String {
    value.map(|v| format!("{:.1} %", v * 100.0)).unwrap_or_else(|| "–".into())
}

fn time_figure(id: &str, caption: String, chart: TimeChart) -> Result<Figure, ReportError> {
    Ok(Figure { id: id.into(), svg: charts::time_chart(&chart)?, points: chart.points(), caption })
}

fn bar_figure(id: &str, caption: String, chart: BarChart) -> Result<Figure, ReportError> {
    Ok(Figure { id: id.into(), svg: charts::bar_chart(&chart)?, points: chart.points(), caption })
}

/// Backtest accuracy per permit type over every horizon (each forecast scored once).
async fn accuracy(ctx: &SessionContext) -> Result<Vec<AccuracyRow>, ReportError> {
    let sql = format!(
        "SELECT permit_type, sum(mase * origins) / sum(origins), sum(naive_mase * origins) / sum(origins), \
                sum(mape * origins) / sum(origins), sum(naive_mape * origins) / sum(origins) \
         FROM {FORECAST_ACCURACY} GROUP BY permit_type ORDER BY permit_type <> 'all', permit_type"
    );
    let batches = query(ctx, &sql).await?;
    let kinds = texts(&batches, 0)?;
    let columns = (1..=4).map(|i| numbers(&batches, i)).collect::<Result<Vec<_>, _>>()?;
    Ok(kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| AccuracyRow {
            permit_type: kind.unwrap_or_default(),
            mase: fixed(columns[0][i], 2),
            naive_mase: fixed(columns[1][i], 2),
            mape: percent(columns[2][i]),
            naive_mape: percent(columns[3][i]),
            beats_naive: matches!((columns[0][i], columns[1][i]), (Some(m), Some(n)) if m < n),
            mase_value: columns[0][i].unwrap_or(f64::NAN),
        })
        .collect())
}

struct Outlook {
    trained_through: String,
    model: String,
    main: Figure,
    rows: Vec<ForecastRow>,
    types: Vec<Figure>,
}

/// The forecast charts and the table of the `'all'` forecast (`None` without a forecast).
async fn outlook(ctx: &SessionContext, accuracy: &[AccuracyRow]) -> Result<Option<Outlook>, ReportError> {
    let sql = format!(
        "SELECT permit_type, period, forecast, lower_80, upper_80, lower_95, upper_95, trained_through, model \
         FROM {INFLOW_FORECAST} ORDER BY permit_type <> 'all', permit_type, period"
    );
    let batches = query(ctx, &sql).await?;
    let kinds = texts(&batches, 0)?;
    let periods = texts(&batches, 1)?;
    let values = (2..=6).map(|i| numbers(&batches, i)).collect::<Result<Vec<_>, _>>()?;
    let Some(Some(trained_through)) = texts(&batches, 7)?.first().cloned() else { return Ok(None) };
    let model = texts(&batches, 8)?.first().cloned().flatten().unwrap_or_default();
    let Some(through) = month(&trained_through) else { return Ok(None) };
    let last_forecast = through + Months::new(HORIZON);
    let mut order: Vec<String> = Vec::new();
    for kind in kinds.iter().flatten() {
        if !order.contains(kind) {
            order.push(kind.clone());
        }
    }
    let history = query(
        ctx,
        &format!(
            "SELECT permit_type, period, applications FROM inflow WHERE period_type = 'month' AND period <= '{trained_through}' \
             AND period > '{}'",
            (through - Months::new(HISTORY_MONTHS)).format("%Y-%m")
        ),
    )
    .await?;
    let (history_kinds, history_periods, history_values) =
        (texts(&history, 0)?, texts(&history, 1)?, numbers(&history, 2)?);
    let mut main = None;
    let mut types = Vec::new();
    let mut rows = Vec::new();
    for kind in &order {
        let small = kind != "all";
        let back = if small { SMALL_HISTORY_MONTHS } else { HISTORY_MONTHS };
        let months = months_between(through - Months::new(back - 1), last_forecast);
        let pick = |column: usize| on_months_of(&months, kind, &kinds, &periods, &values[column]);
        let mut actual = on_months_of(&months, kind, &history_kinds, &history_periods, &history_values);
        // A month with no row had no applications (the inflow mart has rows only for types that occurred).
        for (value, m) in actual.iter_mut().zip(&months) {
            if value.is_none() && m.as_str() <= trained_through.as_str() {
                *value = Some(0.0);
            }
        }
        let mut point = pick(0);
        // The forecast line starts at the last actual month, so the two lines join.
        if let Some(i) = months.iter().position(|m| *m == trained_through) {
            point[i] = actual[i];
        }
        let color = PALETTE[0];
        let chart = TimeChart {
            title: if small { kind.clone() } else { "Applications a month, all permit types".into() },
            y_label: "applications".into(),
            months: months.clone(),
            bands: vec![
                Band { name: "95 % interval".into(), color, opacity: 0.12, lower: pick(3), upper: pick(4) },
                Band { name: "80 % interval".into(), color, opacity: 0.25, lower: pick(1), upper: pick(2) },
            ],
            lines: vec![
                Line { name: "applications".into(), color: INK, values: actual, dashed: false },
                Line { name: "forecast".into(), color: PALETTE[5], values: point, dashed: true },
            ],
            size: if small { (380, 230) } else { (WIDE, 400) },
        };
        let score = accuracy.iter().find(|a| &a.permit_type == kind);
        let caption = match score {
            Some(a) => format!(
                "Backtest (24 monthly origins, 1–12 months ahead): MASE {} against seasonal naive's {}; MAPE {} against {}.",
                a.mase, a.naive_mase, a.mape, a.naive_mape
            ),
            None => "No backtest: the history is too short.".into(),
        };
        let id = format!("forecast-{kind}");
        if small {
            types.push(time_figure(&id, caption, chart)?);
        } else {
            main = Some(time_figure(&id, caption, chart)?);
            for (i, m) in months.iter().enumerate().filter(|(_, m)| m.as_str() > trained_through.as_str()) {
                let [p, l80, u80, l95, u95] = [0, 1, 2, 3, 4].map(|c| pick(c)[i]);
                rows.push(ForecastRow {
                    period: m.clone(),
                    forecast: fixed(p, 0),
                    forecast_value: p.unwrap_or(f64::NAN),
                    interval_80: format!("{} – {}", fixed(l80, 0), fixed(u80, 0)),
                    interval_95: format!("{} – {}", fixed(l95, 0), fixed(u95, 0)),
                });
            }
        }
    }
    Ok(main.map(|main| Outlook { trained_through, model, main, rows, types }))
}

/// The resources the forecast needs, per permit type, over the forecast year.
async fn resources(ctx: &SessionContext) -> Result<Vec<ResourceRow>, ReportError> {
    let sql = format!(
        "SELECT permit_type, sum(forecast_applications), max(decisions_per_person_year), sum(person_years_needed), \
                max(capacity_decisions), last_value(projected_backlog ORDER BY period), last_value(target_backlog ORDER BY period) \
         FROM {RESOURCE_FORECAST} GROUP BY permit_type ORDER BY permit_type <> 'all', permit_type"
    );
    let batches = query(ctx, &sql).await?;
    let kinds = texts(&batches, 0)?;
    let columns = (1..=6).map(|i| numbers(&batches, i)).collect::<Result<Vec<_>, _>>()?;
    Ok(kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| ResourceRow {
            permit_type: kind.unwrap_or_default(),
            applications: fixed(columns[0][i], 0),
            rate: fixed(columns[1][i], 1),
            person_years: fixed(columns[2][i], 1),
            person_years_value: columns[2][i].unwrap_or(f64::NAN),
            capacity: fixed(columns[3][i], 0),
            projected: fixed(columns[4][i], 0),
            target: fixed(columns[5][i], 0),
            above_target: matches!((columns[4][i], columns[5][i]), (Some(p), Some(t)) if p > t),
        })
        .collect())
}

/// The backlog of the period's year and the year before, the target path of each year, and (when the
/// period reaches the forecast) the projected backlog against the path.
async fn backlog_figure(
    ctx: &SessionContext,
    period: &Period,
    trained_through: Option<&str>,
) -> Result<Figure, ReportError> {
    let end = month(&period.last_month()).ok_or_else(|| ReportError::Period(period.text.clone()))?;
    let start = month(&format!("{}-01", &period.text[..4])).expect("a year") - Months::new(12);
    let forecast_end = trained_through.and_then(month).filter(|t| *t <= end).map(|t| t + Months::new(HORIZON));
    let months = months_between(start, forecast_end.unwrap_or(end).max(end));
    let pct = numbers(&query(ctx, "SELECT change_pct FROM backlog_target").await?, 0)?.first().copied().flatten();
    let window = format!("period >= '{}' AND period <= '{}'", months[0], months[months.len() - 1]);
    let rows = query(
        ctx,
        &format!(
            "SELECT period, pending_at_end, pending_at_year_start FROM backlog \
             WHERE period_type = 'month' AND permit_type = 'all' AND {window}"
        ),
    )
    .await?;
    let periods = texts(&rows, 0)?;
    let actual = on_months(&months, &periods, &numbers(&rows, 1)?);
    let year_start = on_months(&months, &periods, &numbers(&rows, 2)?);
    let path: Vec<Option<f64>> = months
        .iter()
        .zip(&year_start)
        .map(|(m, start)| {
            let month_number: f64 = m[5..].parse().ok()?;
            Some((*start)? * (1.0 + pct? / 100.0 * month_number / 12.0))
        })
        .collect();
    let mut lines = vec![
        Line { name: "backlog at month end".into(), color: INK, values: actual, dashed: false },
        Line { name: format!("target path ({} % a year)", fixed(pct, 0)), color: TARGET, values: path, dashed: false },
    ];
    if forecast_end.is_some() {
        let rows = query(
            ctx,
            &format!(
                "SELECT period, projected_backlog, target_backlog FROM {RESOURCE_FORECAST} WHERE permit_type = 'all'"
            ),
        )
        .await?;
        let periods = texts(&rows, 0)?;
        lines.push(Line {
            name: "projected at today's capacity".into(),
            color: PALETTE[5],
            values: on_months(&months, &periods, &numbers(&rows, 1)?),
            dashed: true,
        });
        lines.push(Line {
            name: "target path (forecast year)".into(),
            color: TARGET,
            values: on_months(&months, &periods, &numbers(&rows, 2)?),
            dashed: true,
        });
    }
    let chart = TimeChart {
        title: "Backlog (pending applications) against the target path".into(),
        y_label: "applications pending".into(),
        months,
        bands: Vec::new(),
        lines,
        size: (WIDE, 380),
    };
    let caption = "The path falls from each year's starting backlog by the agreement's target, in equal monthly \
                   steps; a month above it is behind the target."
        .to_string();
    time_figure("backlog", caption, chart)
}

/// A bar chart of the median and 90th percentile days per category against a target, from `sql`'s rows
/// (category, median, 90th percentile, target).
async fn percentile_figure(
    ctx: &SessionContext,
    id: &str,
    caption: String,
    title: String,
    sql: &str,
    colors: [plotters::style::RGBColor; 2],
) -> Result<Figure, ReportError> {
    let rows = query(ctx, sql).await?;
    bar_figure(
        id,
        caption,
        BarChart {
            title,
            x_label: "days".into(),
            categories: texts(&rows, 0)?.into_iter().flatten().collect(),
            bars: vec![
                Bars { name: "median".into(), color: colors[0], values: numbers(&rows, 1)? },
                Bars { name: "90th percentile".into(), color: colors[1], values: numbers(&rows, 2)? },
            ],
            targets: numbers(&rows, 3)?,
            target_name: "target".into(),
            width: WIDE,
        },
    )
}

/// The page for `period` (default: the last year in the marts); `source` names the warehouse in the header.
pub async fn html(ctx: &SessionContext, period: Option<&str>, source: &str) -> Result<String, ReportError> {
    let indicators = indicators(ctx, period).await?;
    let period = &indicators.period;
    let accuracy_rows = accuracy(ctx).await?;
    let outlook = outlook(ctx, &accuracy_rows).await?;
    let resource_rows = if outlook.is_some() { resources(ctx).await? } else { Vec::new() };
    let trained_through = outlook.as_ref().map(|o| o.trained_through.clone());

    let last_month = period.last_month();
    let end = month(&last_month).ok_or_else(|| ReportError::Period(period.text.clone()))?;
    let months = months_between(end - Months::new(HISTORY_MONTHS - 1), end);
    let window = format!("period_type = 'month' AND period >= '{}' AND period <= '{last_month}'", months[0]);
    let (kind, text) = (period.kind, &period.text);

    let mut figures = vec![backlog_figure(ctx, period, trained_through.as_deref()).await?];

    figures.push(
        percentile_figure(
            ctx,
            "processing-times",
            format!("Days from application to decision for the decisions of {text}; the red mark is the target."),
            format!("Processing time by permit type, {text}"),
            &format!(
                "SELECT permit_type, median_days, p90_days, target_days FROM processing_times \
                 WHERE period_type = '{kind}' AND period = '{text}' AND permit_type <> 'all' ORDER BY permit_type"
            ),
            [PALETTE[0], PALETTE[4]],
        )
        .await?,
    );
    figures.push(
        percentile_figure(
            ctx,
            "appointment-wait",
            format!(
                "Days from booking to the identification appointment, {text}; the red mark is the one-month target."
            ),
            format!("Appointment wait by service point, {text}"),
            &format!(
                "SELECT service_point, median_days, p90_days, target_days FROM appointment_wait \
                 WHERE period_type = '{kind}' AND period = '{text}' AND service_point <> 'all' ORDER BY service_point"
            ),
            [PALETTE[2], PALETTE[1]],
        )
        .await?,
    );

    let productivity = monthly(
        ctx,
        &format!("SELECT period, decisions_per_person_year FROM decisions_per_person_year WHERE {window} AND scope = 'agency'"),
        &months,
    )
    .await?;
    figures.push(time_figure(
        "productivity",
        "Decisions in the month ÷ person-years worked in the month (an annual rate). The agreement sets no target."
            .into(),
        TimeChart {
            title: "Decisions per person-year, agency".into(),
            y_label: "decisions per person-year".into(),
            months: months.clone(),
            bands: Vec::new(),
            lines: vec![Line {
                name: "decisions per person-year".into(),
                color: PALETTE[0],
                values: productivity,
                dashed: false,
            }],
            size: (WIDE, 320),
        },
    )?);

    let recovery = monthly(
        ctx,
        &format!("SELECT period, cost_recovery_pct FROM cost_recovery WHERE {window} AND scope = 'agency'"),
        &months,
    )
    .await?;
    let full: Vec<Option<f64>> = months.iter().map(|_| Some(100.0)).collect();
    figures.push(time_figure(
        "cost-recovery",
        "Fee revenue ÷ total cost of fee-based work; 100 % covers the cost.".into(),
        TimeChart {
            title: "Cost recovery of fee-based work".into(),
            y_label: "%".into(),
            months: months.clone(),
            bands: Vec::new(),
            lines: vec![
                Line { name: "cost recovery".into(), color: PALETTE[2], values: recovery, dashed: false },
                Line { name: "full cost recovery (100 %)".into(), color: TARGET, values: full, dashed: true },
            ],
            size: (WIDE, 320),
        },
    )?);

    let shares = query(
        ctx,
        &format!("SELECT period, e_service_share, automated_share FROM channel_automation WHERE {window} AND permit_type = 'all'"),
    )
    .await?;
    let share_periods = texts(&shares, 0)?;
    let as_percent = |values: Vec<Option<f64>>| values.into_iter().map(|v| v.map(|v| v * 100.0)).collect::<Vec<_>>();
    figures.push(time_figure(
        "shares",
        "Applications made in the e-service, and decisions made (partly) automatically, as shares of all.".into(),
        TimeChart {
            title: "E-service and automation".into(),
            y_label: "% of applications / decisions".into(),
            months: months.clone(),
            bands: Vec::new(),
            lines: vec![
                Line {
                    name: "e-service share of applications".into(),
                    color: PALETTE[0],
                    values: as_percent(on_months(&months, &share_periods, &numbers(&shares, 1)?)),
                    dashed: false,
                },
                Line {
                    name: "automated share of decisions".into(),
                    color: PALETTE[3],
                    values: as_percent(on_months(&months, &share_periods, &numbers(&shares, 2)?)),
                    dashed: false,
                },
            ],
            size: (WIDE, 320),
        },
    )?);

    let rejections = query(
        ctx,
        "SELECT detail, sum(occurrences) FROM data_quality WHERE issue = 'rejection' AND period_type = 'day' \
         GROUP BY detail ORDER BY 2 DESC, detail",
    )
    .await?;
    figures.push(bar_figure(
        "data-quality",
        "Input lines rejected into the dead-letter table since the warehouse began, by the rule they broke; they \
         count by the day they arrived, not by their events' period (see _rejections)."
            .into(),
        BarChart {
            title: "Rejected input by rule, everything ingested".into(),
            x_label: "lines rejected".into(),
            categories: texts(&rejections, 0)?.into_iter().flatten().collect(),
            bars: vec![Bars { name: "rejected".into(), color: PALETTE[5], values: numbers(&rejections, 1)? }],
            targets: Vec::new(),
            target_name: String::new(),
            width: WIDE,
        },
    )?);

    let (model, main_forecast, forecast_rows, type_forecasts) = match outlook {
        Some(o) => (o.model, Some(o.main), o.rows, o.types),
        None => (String::new(), None, Vec::new(), Vec::new()),
    };
    let mut accuracy_rows = accuracy_rows;
    let all_accuracy = accuracy_rows.iter().position(|a| a.permit_type == "all").map(|i| accuracy_rows.remove(i));
    let page = Page {
        period,
        source,
        indicators: &indicators,
        trained_through,
        model,
        main_forecast,
        forecast_rows,
        all_accuracy,
        type_forecasts,
        accuracy_rows,
        resource_rows,
        figures,
    };
    Ok(page.render()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_placed_on_their_months() {
        let months = months_between(month("2024-11").expect("month"), month("2025-02").expect("month"));
        assert_eq!(months, ["2024-11", "2024-12", "2025-01", "2025-02"]);
        let placed = on_months(&months, &[Some("2025-01".into()), Some("2024-11".into())], &[Some(3.0), Some(1.0)]);
        assert_eq!(placed, [Some(1.0), None, Some(3.0), None]);
    }
}
