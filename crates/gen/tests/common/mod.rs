//! Reading generated output back: timestamps in UTC and the agency's yearly figures.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

/// UTC seconds of an RFC 3339 timestamp as the generator writes them (`…T09:15:00Z`, `…+02:00`).
pub fn utc_seconds(text: &str) -> i64 {
    let number = |range: std::ops::Range<usize>| -> i64 { text[range].parse().expect("timestamp digits") };
    let (year, month, day) = (number(0..4), number(5..7), number(8..10));
    let seconds = number(11..13) * 3_600 + number(14..16) * 60 + number(17..19);
    let offset = match &text[19..] {
        "Z" => 0,
        zone => {
            let minutes = number(20..22) * 60 + number(23..25);
            if zone.starts_with('-') { -minutes * 60 } else { minutes * 60 }
        }
    };
    // Days from civil (H. Hinnant).
    let y = year - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    days * 86_400 + seconds - offset
}

fn days_in_year(year: i64) -> f64 {
    if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 { 366.0 } else { 365.0 }
}

/// The figures a year of output adds up to (each `event_id` once).
#[derive(Debug, Default)]
pub struct Totals {
    pub applications: u64,
    pub decisions: u64,
    pub appeals: u64,
    pub appeals_returned: u64,
    pub fee_eur: f64,
    pub cost_eur: f64,
    pub negative_costs: u64,
    pub person_years: f64,
    pub staff_reports: u64,
    pub staff_months: u64,
    pub identifications: u64,
    pub waits_over_30_days: u64,
    pub e_service: u64,
    pub automated: u64,
    pub decisions_without_application: u64,
    pub decisions_before_application: u64,
    pub offsets: BTreeSet<String>,
}

/// The top-level fields of a generated line: name and raw value (string contents, or the number,
/// literal or object text).
///
/// Generated lines have no escapes, so a scan is enough (and fast in debug builds); the decoder tests
/// check the lines as JSON.
fn fields<'a>(line: &'a str, fields: &mut Vec<(&'a str, &'a str)>) {
    fields.clear();
    let mut rest = line.get(1..).unwrap_or_default();
    while rest.starts_with('"') {
        let Some(name_end) = rest[1..].find('"') else {
            break;
        };
        let name = &rest[1..name_end + 1];
        let value = &rest[name_end + 3..];
        let (text, end) = match value.as_bytes().first() {
            Some(b'"') => {
                let close = value[1..].find('"').map_or(value.len(), |i| i + 1);
                (&value[1..close], close + 1)
            }
            Some(b'{') => {
                let end = value.find('}').map_or(value.len(), |i| i + 1);
                (&value[..end], end)
            }
            _ => {
                let end = value.find([',', '}']).unwrap_or(value.len());
                (&value[..end], end)
            }
        };
        fields.push((name, text));
        rest = value.get(end + 1..).unwrap_or_default();
    }
}

/// Adds up the lines of `output`, which must be generated without faults (each event once).
pub fn totals(output: &[u8]) -> Totals {
    let mut totals = Totals::default();
    let mut submitted = BTreeMap::new();
    let mut decided = Vec::new();
    let mut latest_staff: BTreeMap<(&str, &str), (i64, f64)> = BTreeMap::new();
    let output = std::str::from_utf8(output).expect("valid lines are UTF-8");
    let mut line_fields = Vec::with_capacity(12);
    for line in output.lines() {
        fields(line, &mut line_fields);
        let fields = &line_fields;
        let text = |key: &str| fields.iter().find(|(name, _)| *name == key).map_or("", |(_, value)| *value);
        let number = |key: &str| text(key).parse::<f64>().expect("a number");
        let occurred = text("occurred_at");
        totals.offsets.insert(occurred.get(19..).unwrap_or_default().to_string());
        let at = utc_seconds(occurred);
        match text("event_type") {
            "application.submitted" => {
                totals.applications += 1;
                totals.fee_eur += number("fee_eur");
                totals.e_service += u64::from(text("channel") == "e_service");
                submitted.insert(text("application_id"), at);
            }
            "decision.made" => {
                totals.decisions += 1;
                totals.automated += u64::from(text("automated") == "true");
                decided.push((text("application_id"), at));
            }
            "appeal.resolved" => {
                totals.appeals += 1;
                totals.appeals_returned += u64::from(text("result").starts_with("returned_"));
            }
            "staff.month_reported" => {
                totals.staff_reports += 1;
                let month = text("month");
                let year: i64 = month[..4].parse().expect("month year");
                let py = number("paid_days") / days_in_year(year) * number("part_time_factor");
                let entry = latest_staff.entry((text("employee_ref"), month)).or_insert((at, py));
                if at > entry.0 {
                    *entry = (at, py);
                }
            }
            "cost.booked" => {
                totals.cost_eur += number("amount_eur");
                totals.negative_costs += u64::from(number("amount_eur") < 0.0);
            }
            "appointment.booked" => {
                if text("service") == "identification" {
                    totals.identifications += 1;
                    let wait = utc_seconds(text("first_free_slot_at")) - at;
                    totals.waits_over_30_days += u64::from(wait > 30 * 86_400);
                }
            }
            other => panic!("unexpected event type {other}"),
        }
    }
    totals.person_years = latest_staff.values().map(|(_, py)| py).sum();
    totals.staff_months = latest_staff.len() as u64;
    for (application, at) in decided {
        match submitted.get(&application) {
            None => totals.decisions_without_application += 1,
            Some(submitted_at) if *submitted_at > at => totals.decisions_before_application += 1,
            Some(_) => {}
        }
    }
    totals
}
