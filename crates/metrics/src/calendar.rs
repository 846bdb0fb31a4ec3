//! The periods of the warehouse, read from the commit log without scanning data: every committed file of
//! a table with an event date records its first and last UTC event date, and every other event file sits in
//! a partition of its accounting month (`month=YYYY-MM`).
//!
//! Month and year periods run from the first to the last month with any event; ISO weeks from the week of
//! the first to the week of the last event date (a month-partitioned event counts as the month's first day).

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{Datelike, Months, NaiveDate};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use permitflow_warehouse::CommittedFile;

use crate::{MetricsError, query_error};

/// First and last event day of the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// Earliest event date (UTC).
    pub first_day: NaiveDate,
    /// Latest event date (UTC).
    pub last_day: NaiveDate,
}

/// The first and last event day of a committed file, if it is an event file: its recorded event dates, or
/// the first day of its partition's month (staff and costs).
pub fn file_days(file: &CommittedFile) -> Option<[NaiveDate; 2]> {
    let parse = |day: &str| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok();
    if let Some([first, last]) = &file.event_dates {
        return Some([parse(first)?, parse(last)?]);
    }
    let partition = file.path.split('/').find_map(|segment| segment.split_once('='))?;
    match partition {
        ("month", month) => parse(&format!("{month}-01")).map(|day| [day, day]),
        _ => None,
    }
}

/// The years whose periods contain `day`: its calendar year and its ISO week's year.
pub fn years_of(day: NaiveDate) -> [i32; 2] {
    [day.year(), day.iso_week().year()]
}

impl Calendar {
    /// `[first_day, last_day]` as ISO dates (the form kept in `marts/_state.json`).
    pub fn to_strings(&self) -> [String; 2] {
        [self.first_day.to_string(), self.last_day.to_string()]
    }

    /// The calendar of [`Calendar::to_strings`].
    pub fn from_strings(days: &[String; 2]) -> Option<Calendar> {
        Some(Calendar { first_day: days[0].parse().ok()?, last_day: days[1].parse().ok()? })
    }

    /// The calendar of these committed files (`None` when there is no event file).
    pub fn of<'a>(files: impl IntoIterator<Item = &'a CommittedFile>) -> Option<Calendar> {
        let days: BTreeSet<NaiveDate> = files.into_iter().filter_map(file_days).flatten().collect();
        Some(Calendar { first_day: *days.first()?, last_day: *days.last()? })
    }

    fn months(&self) -> Vec<NaiveDate> {
        let last = self.last_day.with_day(1).expect("day 1 exists");
        std::iter::successors(self.first_day.with_day(1), |m| m.checked_add_months(Months::new(1)))
            .take_while(|m| *m <= last)
            .collect()
    }

    #[allow(clippy::type_complexity)]
    fn period_rows(&self, from_year: i32) -> (Vec<String>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>) {
        let mut rows: (Vec<String>, Vec<String>, Vec<String>, Vec<i64>, Vec<i64>) = Default::default();
        for first in self.months().into_iter().filter(|m| m.year() >= from_year) {
            let next = first.checked_add_months(Months::new(1)).expect("next month exists");
            let year_start = NaiveDate::from_ymd_opt(first.year(), 1, 1).expect("1 January exists");
            let next_year = NaiveDate::from_ymd_opt(first.year() + 1, 1, 1).expect("1 January exists");
            let name = first.format("%Y-%m").to_string();
            for (kind, label, from, to) in
                [("month", name.clone(), first, next), ("year", first.year().to_string(), year_start, next_year)]
            {
                rows.0.push(name.clone());
                rows.1.push(kind.to_string());
                rows.2.push(label);
                rows.3.push(micros(from));
                rows.4.push(micros(to));
            }
        }
        rows
    }

    fn week_rows(&self, from_year: i32) -> (Vec<String>, Vec<i64>, Vec<i64>) {
        let monday = |d: NaiveDate| d - chrono::Duration::days(d.weekday().num_days_from_monday().into());
        let last = monday(self.last_day);
        let mut rows: (Vec<String>, Vec<i64>, Vec<i64>) = Default::default();
        for start in std::iter::successors(Some(monday(self.first_day)), |d| Some(*d + chrono::Duration::days(7)))
            .take_while(|d| *d <= last)
        {
            let week = start.iso_week();
            if week.year() >= from_year {
                rows.0.push(format!("{}-W{:02}", week.year(), week.week()));
                rows.1.push(micros(start));
                rows.2.push(micros(start + chrono::Duration::days(7)));
            }
        }
        rows
    }
}

/// Registers `periods` (month, period_type, period, period_start, period_end: one row per month for its
/// month period and one per month for its year period) and `weeks` (period, period_start, period_end),
/// keeping the periods of the years from `from_year` on.
pub fn register_periods(calendar: Option<&Calendar>, ctx: &SessionContext, from_year: i32) -> Result<(), MetricsError> {
    let (mut month, mut period_type, mut period, mut start, mut end) = Default::default();
    let (mut week, mut week_start, mut week_end) = Default::default();
    if let Some(calendar) = calendar {
        (month, period_type, period, start, end) = calendar.period_rows(from_year);
        (week, week_start, week_end) = calendar.week_rows(from_year);
    }
    let timestamp = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let periods = Schema::new(vec![
        Field::new("month", DataType::Utf8, false),
        Field::new("period_type", DataType::Utf8, false),
        Field::new("period", DataType::Utf8, false),
        Field::new("period_start", timestamp(), false),
        Field::new("period_end", timestamp(), false),
    ]);
    register(ctx, "periods", periods, vec![strings(month), strings(period_type), strings(period), ts(start), ts(end)])?;
    let weeks = Schema::new(vec![
        Field::new("period", DataType::Utf8, false),
        Field::new("period_start", timestamp(), false),
        Field::new("period_end", timestamp(), false),
    ]);
    register(ctx, "weeks", weeks, vec![strings(week), ts(week_start), ts(week_end)])
}

fn micros(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc().timestamp_micros()
}

fn strings(values: Vec<String>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn ts(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn register(ctx: &SessionContext, name: &str, schema: Schema, columns: Vec<ArrayRef>) -> Result<(), MetricsError> {
    let schema = Arc::new(schema);
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    let table = MemTable::try_new(schema, vec![vec![batch]]).map_err(query_error(name))?;
    ctx.deregister_table(name).map_err(query_error(name))?;
    ctx.register_table(name, Arc::new(table)).map_err(query_error(name))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, event_dates: Option<[&str; 2]>) -> CommittedFile {
        let event_dates = event_dates.map(|days| days.map(str::to_string));
        CommittedFile { table: "t".into(), path: path.into(), rows: 1, bytes: 1, event_dates }
    }

    #[test]
    fn range_comes_from_event_dates_and_month_paths_and_ignores_rejections() {
        let files = [
            file("events/decisions/event_month=2024-02/part-1.parquet", Some(["2024-02-03", "2024-02-29"])),
            file("events/staff/month=2023-12/part-2.parquet", None),
            file("_rejections/part-3.parquet", None),
        ];
        let calendar = Calendar::of(&files).expect("has events");
        assert_eq!(calendar.first_day, NaiveDate::from_ymd_opt(2023, 12, 1).expect("date"));
        assert_eq!(calendar.last_day, NaiveDate::from_ymd_opt(2024, 2, 29).expect("date"));
        assert_eq!(calendar.months().len(), 3);
    }

    #[test]
    fn weeks_cross_the_year_boundary_with_their_iso_year() {
        let calendar = Calendar {
            first_day: NaiveDate::from_ymd_opt(2024, 12, 30).expect("date"),
            last_day: NaiveDate::from_ymd_opt(2025, 1, 6).expect("date"),
        };
        let (weeks, _, _) = calendar.week_rows(0);
        assert_eq!(weeks, ["2025-W01", "2025-W02"]);
        assert_eq!(years_of(calendar.first_day), [2024, 2025]);
        let (weeks, _, _) = calendar.week_rows(2026);
        assert!(weeks.is_empty());
    }
}
