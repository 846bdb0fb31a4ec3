//! What real producers do wrong: resent events, late events and malformed lines, and the order the
//! lines of a year file are written in.

use std::collections::BTreeMap;
use std::io::Write;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};
use uuid::Builder;

use crate::event::{
    APPEAL_RESOLVED, APPLICATION_SUBMITTED, APPOINTMENT_BOOKED, COST_BOOKED, DECISION_MADE, Event, STAFF_MONTH_REPORTED,
};
use crate::time::{DAY, HOUR, MINUTE, days_in_year, timestamp, year_start};
use crate::workload::{Stream, stream};
use crate::{GenConfig, GenError, GenSummary};

/// The contract's size limit of one event (1 MiB); `line_too_large` lines exceed it.
const MAX_EVENT_BYTES: usize = 1 << 20;
/// `line_too_large` lines per file at most, whatever the share: each is over a mebibyte.
const MAX_LARGE_LINES_PER_FILE: u64 = 2;
/// How much later than its neighbours a late event is written, days.
const LATE_DAYS: std::ops::RangeInclusive<i64> = 7..=150;
/// How much later a resent copy follows the original.
const RESEND_DELAY: std::ops::Range<i64> = MINUTE..3 * DAY;
/// Bytes collected before they are handed to the writer.
const WRITE_CHUNK: usize = 1 << 16;

/// A kind of malformed line; together they break every rule the decoder checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Malformed {
    InvalidJson,
    NotAnObject,
    InvalidUtf8,
    LoneSurrogate,
    MissingField,
    WrongType,
    UnknownEventType,
    UnknownSchemaVersion,
    UnknownEnumValue,
    InvalidTimestamp,
    InvalidMonth,
    NegativeFee,
    TooManyDecimals,
    AllocationSum,
    PaidDaysBeyondMonth,
    PartTimeFactorZero,
    FirstFreeSlotBeforeBooking,
    SlotBeforeFirstFreeSlot,
    LineTooLarge,
}

impl Malformed {
    /// The order kinds are used in, round robin (the large ones last).
    const ALL: [Malformed; 19] = [
        Malformed::InvalidJson,
        Malformed::NotAnObject,
        Malformed::InvalidUtf8,
        Malformed::LoneSurrogate,
        Malformed::MissingField,
        Malformed::WrongType,
        Malformed::UnknownEventType,
        Malformed::UnknownSchemaVersion,
        Malformed::UnknownEnumValue,
        Malformed::InvalidTimestamp,
        Malformed::InvalidMonth,
        Malformed::NegativeFee,
        Malformed::TooManyDecimals,
        Malformed::AllocationSum,
        Malformed::PaidDaysBeyondMonth,
        Malformed::PartTimeFactorZero,
        Malformed::FirstFreeSlotBeforeBooking,
        Malformed::SlotBeforeFirstFreeSlot,
        Malformed::LineTooLarge,
    ];

    fn name(self) -> &'static str {
        match self {
            Malformed::InvalidJson => "invalid_json",
            Malformed::NotAnObject => "not_an_object",
            Malformed::InvalidUtf8 => "invalid_utf8",
            Malformed::LoneSurrogate => "lone_surrogate",
            Malformed::MissingField => "missing_field",
            Malformed::WrongType => "wrong_type",
            Malformed::UnknownEventType => "unknown_event_type",
            Malformed::UnknownSchemaVersion => "unknown_schema_version",
            Malformed::UnknownEnumValue => "unknown_enum_value",
            Malformed::InvalidTimestamp => "invalid_timestamp",
            Malformed::InvalidMonth => "invalid_month",
            Malformed::NegativeFee => "negative_fee",
            Malformed::TooManyDecimals => "too_many_decimals",
            Malformed::AllocationSum => "allocation_sum",
            Malformed::PaidDaysBeyondMonth => "paid_days_beyond_month",
            Malformed::PartTimeFactorZero => "part_time_factor_zero",
            Malformed::FirstFreeSlotBeforeBooking => "first_free_slot_before_booking",
            Malformed::SlotBeforeFirstFreeSlot => "slot_before_first_free_slot",
            Malformed::LineTooLarge => "line_too_large",
        }
    }

    /// The line, without its newline.
    fn line(self, rng: &mut ChaCha8Rng, year: i32) -> Vec<u8> {
        /// Stands for text that cannot be put in a `serde_json::Value`.
        const MARK: &str = "@@MARK@@";
        let mut event = match self {
            Malformed::InvalidJson
            | Malformed::NotAnObject
            | Malformed::MissingField
            | Malformed::WrongType
            | Malformed::UnknownEventType
            | Malformed::UnknownSchemaVersion
            | Malformed::InvalidTimestamp
            | Malformed::NegativeFee
            | Malformed::LineTooLarge => template(rng, year, APPLICATION_SUBMITTED),
            Malformed::UnknownEnumValue => template(rng, year, APPEAL_RESOLVED),
            Malformed::InvalidUtf8 | Malformed::LoneSurrogate => template(rng, year, DECISION_MADE),
            Malformed::InvalidMonth | Malformed::TooManyDecimals => template(rng, year, COST_BOOKED),
            Malformed::AllocationSum | Malformed::PaidDaysBeyondMonth | Malformed::PartTimeFactorZero => {
                template(rng, year, STAFF_MONTH_REPORTED)
            }
            Malformed::FirstFreeSlotBeforeBooking | Malformed::SlotBeforeFirstFreeSlot => {
                template(rng, year, APPOINTMENT_BOOKED)
            }
        };
        let mut set = |key: &str, value: Value| event.insert(key.to_string(), value);
        match self {
            Malformed::InvalidJson | Malformed::NotAnObject => None,
            Malformed::InvalidUtf8 | Malformed::LoneSurrogate => set("unit", json!(MARK)),
            Malformed::MissingField => event.remove("fee_eur"),
            Malformed::WrongType => set("fee_eur", json!("455.00")),
            Malformed::UnknownEventType => set("event_type", json!("application.withdrawn")),
            Malformed::UnknownSchemaVersion => set("schema_version", json!(2)),
            Malformed::UnknownEnumValue => set("result", json!("dismissed")),
            Malformed::InvalidTimestamp => set("occurred_at", json!(format!("{year}-03-01 09:15:00"))),
            Malformed::InvalidMonth => set("month", json!(format!("{year}-13"))),
            Malformed::NegativeFee => set("fee_eur", json!(-455)),
            Malformed::TooManyDecimals => set("amount_eur", json!(1234.567)),
            Malformed::AllocationSum => set("allocation", json!({"asylum": 0.6, "overhead": 0.3})),
            Malformed::PaidDaysBeyondMonth => {
                set("month", json!(format!("{year}-04")));
                set("paid_days", json!(31))
            }
            Malformed::PartTimeFactorZero => set("part_time_factor", json!(0)),
            Malformed::FirstFreeSlotBeforeBooking => {
                set("occurred_at", json!(format!("{year}-03-01T09:00:00Z")));
                set("first_free_slot_at", json!(format!("{year}-03-01T08:00:00Z")))
            }
            Malformed::SlotBeforeFirstFreeSlot => {
                // Later on the clock, earlier in UTC: 07:00Z is before 08:30Z.
                set("occurred_at", json!(format!("{year}-02-20T09:00:00Z")));
                set("first_free_slot_at", json!(format!("{year}-03-01T08:30:00Z")));
                set("slot_at", json!(format!("{year}-03-01T10:00:00+03:00")))
            }
            Malformed::LineTooLarge => set("attachment", json!("A".repeat(MAX_EVENT_BYTES + 1024))),
        };
        let text = Value::Object(event).to_string();
        let text = match self {
            Malformed::InvalidJson => text[..text.len() / 2].to_string(),
            Malformed::NotAnObject => format!("[{text}]"),
            Malformed::LoneSurrogate => text.replace(MARK, r"U0\ud800"),
            _ => text,
        };
        match self {
            Malformed::InvalidUtf8 => {
                text.replace(MARK, "U0\u{1}").into_bytes().into_iter().map(invalid_byte).collect()
            }
            _ => text.into_bytes(),
        }
    }
}

/// Turns the marker byte 0x01 into 0xFF, which never occurs in UTF-8.
fn invalid_byte(byte: u8) -> u8 {
    if byte == 1 { 0xFF } else { byte }
}

/// A valid event of the given type, as a JSON object, at a random time of `year`.
fn template(rng: &mut ChaCha8Rng, year: i32, event_type: &str) -> Map<String, Value> {
    let at = year_start(year) + rng.random_range(0..i64::from(days_in_year(year) - 1) * DAY);
    let id = Builder::from_random_bytes(rng.random()).into_uuid();
    let n: u32 = rng.random_range(0..1_000_000);
    let mut event = Map::new();
    event.insert("event_id".into(), json!(id.hyphenated().to_string()));
    event.insert("event_type".into(), json!(event_type));
    event.insert("schema_version".into(), json!(1));
    event.insert("occurred_at".into(), json!(timestamp(at, 0)));
    let body = match event_type {
        APPLICATION_SUBMITTED => json!({
            "application_id": format!("APP-{year}-X{n:06}"), "applicant_ref": format!("P{n:09}"),
            "applicant_role": "main", "permit_type": "study", "channel": "e_service", "unit": "U05", "fee_eur": 300
        }),
        DECISION_MADE => json!({
            "decision_id": format!("DEC-{year}-X{n:06}"), "application_id": format!("APP-{year}-X{n:06}"),
            "permit_type": "family", "outcome": "negative", "unit": "U06", "automated": false
        }),
        APPEAL_RESOLVED => json!({
            "appeal_id": format!("APL-{year}-X{n:06}"), "decision_id": format!("DEC-{year}-X{n:06}"),
            "application_id": format!("APP-{year}-X{n:06}"), "permit_type": "asylum",
            "court": "administrative_court", "result": "upheld"
        }),
        STAFF_MONTH_REPORTED => json!({
            "employee_ref": format!("EMP-X{n:06}"), "unit": "U01", "month": format!("{year}-03"), "paid_days": 31,
            "part_time_factor": 1, "allocation": {"asylum": 0.9, "overhead": 0.1}
        }),
        COST_BOOKED => json!({
            "unit": "U12", "process": "overhead", "month": format!("{year}-03"), "cost_category": "ict",
            "amount_eur": 1234.5
        }),
        // APPOINTMENT_BOOKED
        _ => json!({
            "appointment_id": format!("APT-{year}-X{n:06}"), "service_point": "helsinki", "service": "identification",
            "first_free_slot_at": timestamp(at + 3 * DAY, 0), "slot_at": timestamp(at + 3 * DAY + HOUR, 0)
        }),
    };
    if let Value::Object(fields) = body {
        event.extend(fields);
    }
    event
}

/// A line of the output: a valid event (or a resent copy of it), or a malformed line, by index.
#[derive(Clone, Copy)]
enum Item {
    Event(usize),
    Malformed(usize),
}

/// Writes a year's events with the configured faults; returns what was written.
pub(crate) fn write_year(
    config: &GenConfig,
    year: i32,
    events: &[Event],
    out: &mut dyn Write,
) -> Result<GenSummary, GenError> {
    let mut rng = stream(config.seed, year, Stream::Injection);
    let mut summary = GenSummary::default();
    let end_of_year = year_start(year + 1);
    // (write position, tie-break, line): lines are written in position order.
    let mut plan: Vec<(i64, usize, Item)> = Vec::with_capacity(events.len() + events.len() / 8);
    let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        *by_type.entry(event.body.event_type()).or_default() += 1;
        let mut position = event.at;
        if rng.random_bool(config.late_share) {
            summary.late += 1;
            position += rng.random_range(LATE_DAYS) * DAY;
            if position >= end_of_year {
                position = end_of_year + rng.random_range(0..DAY);
            }
        }
        plan.push((position, plan.len(), Item::Event(index)));
        if rng.random_bool(config.duplicate_share) {
            summary.duplicates += 1;
            plan.push((position + rng.random_range(RESEND_DELAY), plan.len(), Item::Event(index)));
        }
    }
    summary.valid_events = events.len() as u64;
    summary.by_type = by_type.into_iter().map(|(event_type, count)| (event_type.to_string(), count)).collect();
    let malformed = (config.malformed_share * events.len() as f64).round() as u64;
    let mut kinds = Malformed::ALL.iter().cycle();
    let mut large = 0;
    let mut malformed_lines = Vec::new();
    while summary.malformed < malformed {
        let Some(&kind) = kinds.next() else { break };
        if kind == Malformed::LineTooLarge {
            if large == MAX_LARGE_LINES_PER_FILE {
                continue;
            }
            large += 1;
        }
        summary.malformed += 1;
        *summary.malformed_by_kind.entry(kind.name().to_string()).or_default() += 1;
        let position = rng.random_range(year_start(year)..end_of_year);
        plan.push((position, plan.len(), Item::Malformed(malformed_lines.len())));
        malformed_lines.push(kind.line(&mut rng, year));
    }
    plan.sort_unstable_by_key(|&(position, order, _)| (position, order));

    let mut buf = String::with_capacity(WRITE_CHUNK + 4096);
    for &(_, _, item) in &plan {
        match item {
            Item::Event(index) => events[index].render(&mut buf),
            Item::Malformed(index) => {
                let line = &malformed_lines[index];
                out.write_all(buf.as_bytes())?;
                out.write_all(line)?;
                out.write_all(b"\n")?;
                summary.bytes += buf.len() as u64 + line.len() as u64 + 1;
                buf.clear();
            }
        }
        if buf.len() >= WRITE_CHUNK {
            out.write_all(buf.as_bytes())?;
            summary.bytes += buf.len() as u64;
            buf.clear();
        }
    }
    out.write_all(buf.as_bytes())?;
    summary.bytes += buf.len() as u64;
    out.flush()?;
    summary.lines = plan.len() as u64;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_lines_are_single_lines() {
        let mut rng = stream(7, 2017, Stream::Injection);
        for kind in Malformed::ALL {
            let line = kind.line(&mut rng, 2017);
            assert!(!line.contains(&b'\n'), "{}", kind.name());
            assert_eq!(line.len() > MAX_EVENT_BYTES, kind == Malformed::LineTooLarge, "{}", kind.name());
        }
    }

    #[test]
    fn every_template_is_an_object_with_an_envelope() {
        let mut rng = stream(7, 2017, Stream::Injection);
        for event_type in [
            APPLICATION_SUBMITTED,
            DECISION_MADE,
            APPEAL_RESOLVED,
            STAFF_MONTH_REPORTED,
            COST_BOOKED,
            APPOINTMENT_BOOKED,
        ] {
            let event = template(&mut rng, 2017, event_type);
            assert_eq!(event.get("event_type"), Some(&json!(event_type)));
            assert!(event.contains_key("occurred_at"));
        }
    }
}
