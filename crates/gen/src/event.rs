//! Generated events and their NDJSON form (the fields of `schemas/*.schema.json`).

use std::fmt::Write;

use uuid::Uuid;

use crate::model::{PermitType, Process, SERVICE_POINTS, UNITS};
use crate::time::push_timestamp;

pub(crate) const APPLICATION_SUBMITTED: &str = "application.submitted";
pub(crate) const DECISION_MADE: &str = "decision.made";
pub(crate) const APPEAL_RESOLVED: &str = "appeal.resolved";
pub(crate) const STAFF_MONTH_REPORTED: &str = "staff.month_reported";
pub(crate) const COST_BOOKED: &str = "cost.booked";
pub(crate) const APPOINTMENT_BOOKED: &str = "appointment.booked";

/// A case: the application submitted in `year` as its `seq`-th one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CaseId {
    pub year: i32,
    pub seq: u32,
}

/// One valid event: the envelope and its body.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// `occurred_at` in UTC seconds.
    pub at: i64,
    /// UTC offset `occurred_at` is written in, seconds.
    pub offset: i32,
    pub id: Uuid,
    pub producer: Option<&'static str>,
    pub body: Body,
}

#[derive(Debug, Clone)]
pub(crate) enum Body {
    Application {
        case: CaseId,
        applicant: u32,
        family_member: bool,
        permit: PermitType,
        e_service: bool,
        unit: usize,
        fee_cents: i64,
    },
    Decision {
        case: CaseId,
        permit: PermitType,
        outcome: Outcome,
        unit: usize,
        automated: bool,
    },
    Appeal {
        case: CaseId,
        permit: PermitType,
        supreme_court: bool,
        /// One of the contract's `appeal_result` values.
        result: &'static str,
    },
    Staff {
        employee: u32,
        unit: usize,
        year: i32,
        month: u32,
        paid_days: u32,
        /// Part-time factor in hundredths.
        factor: u32,
        /// Shares in thousandths, summing to 1000.
        allocation: Vec<(Process, u32)>,
    },
    Cost {
        unit: usize,
        process: Process,
        year: i32,
        month: u32,
        /// One of the contract's `cost_category` values.
        category: &'static str,
        amount_cents: i64,
    },
    Appointment {
        id: CaseId,
        point: usize,
        identification: bool,
        first_free: (i64, i32),
        slot: (i64, i32),
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Positive,
    Negative,
    NotExamined,
    Lapsed,
}

impl Outcome {
    pub(crate) const ALL: [Outcome; 4] = [Outcome::Positive, Outcome::Negative, Outcome::NotExamined, Outcome::Lapsed];

    fn as_str(self) -> &'static str {
        match self {
            Outcome::Positive => "positive",
            Outcome::Negative => "negative",
            Outcome::NotExamined => "not_examined",
            Outcome::Lapsed => "lapsed",
        }
    }
}

impl Body {
    pub(crate) fn event_type(&self) -> &'static str {
        match self {
            Body::Application { .. } => APPLICATION_SUBMITTED,
            Body::Decision { .. } => DECISION_MADE,
            Body::Appeal { .. } => APPEAL_RESOLVED,
            Body::Staff { .. } => STAFF_MONTH_REPORTED,
            Body::Cost { .. } => COST_BOOKED,
            Body::Appointment { .. } => APPOINTMENT_BOOKED,
        }
    }
}

impl Event {
    /// Appends the event as one NDJSON line, newline included.
    pub(crate) fn render(&self, buf: &mut String) {
        let _ = write!(
            buf,
            r#"{{"event_id":"{}","event_type":"{}","schema_version":1,"occurred_at":""#,
            self.id.hyphenated(),
            self.body.event_type()
        );
        push_timestamp(buf, self.at, self.offset);
        buf.push('"');
        if let Some(producer) = self.producer {
            let _ = write!(buf, r#","producer":"{producer}""#);
        }
        match &self.body {
            Body::Application { case, applicant, family_member, permit, e_service, unit, fee_cents } => {
                let _ = write!(
                    buf,
                    r#","application_id":"{}","applicant_ref":"P{applicant:09}","applicant_role":"{}","permit_type":"{}","channel":"{}","unit":"{}","fee_eur":"#,
                    application_id(*case),
                    if *family_member { "family_member" } else { "main" },
                    permit.as_str(),
                    if *e_service { "e_service" } else { "paper" },
                    UNITS[*unit].0,
                );
                push_cents(buf, *fee_cents);
            }
            Body::Decision { case, permit, outcome, unit, automated } => {
                let _ = write!(
                    buf,
                    r#","decision_id":"DEC-{}-{:07}","application_id":"{}","permit_type":"{}","outcome":"{}","unit":"{}","automated":{automated}"#,
                    case.year,
                    case.seq,
                    application_id(*case),
                    permit.as_str(),
                    outcome.as_str(),
                    UNITS[*unit].0,
                );
            }
            Body::Appeal { case, permit, supreme_court, result } => {
                let _ = write!(
                    buf,
                    r#","appeal_id":"APL-{}-{:07}","decision_id":"DEC-{}-{:07}","application_id":"{}","permit_type":"{}","court":"{}","result":"{}""#,
                    case.year,
                    case.seq,
                    case.year,
                    case.seq,
                    application_id(*case),
                    permit.as_str(),
                    if *supreme_court { "supreme_administrative_court" } else { "administrative_court" },
                    result,
                );
            }
            Body::Staff { employee, unit, year, month, paid_days, factor, allocation } => {
                let _ = write!(
                    buf,
                    r#","employee_ref":"EMP-{employee:05}","unit":"{}","month":"{year:04}-{month:02}","paid_days":{paid_days},"part_time_factor":"#,
                    UNITS[*unit].0,
                );
                push_fraction(buf, *factor, 2);
                buf.push_str(r#","allocation":{"#);
                for (i, (process, share)) in allocation.iter().enumerate() {
                    if i > 0 {
                        buf.push(',');
                    }
                    let _ = write!(buf, r#""{}":"#, process.as_str());
                    push_fraction(buf, *share, 3);
                }
                buf.push('}');
            }
            Body::Cost { unit, process, year, month, category, amount_cents } => {
                let _ = write!(
                    buf,
                    r#","unit":"{}","process":"{}","month":"{year:04}-{month:02}","cost_category":"{}","amount_eur":"#,
                    UNITS[*unit].0,
                    process.as_str(),
                    category,
                );
                push_cents(buf, *amount_cents);
            }
            Body::Appointment { id, point, identification, first_free, slot } => {
                let _ = write!(
                    buf,
                    r#","appointment_id":"APT-{}-{:07}","service_point":"{}","service":"{}","first_free_slot_at":""#,
                    id.year,
                    id.seq,
                    SERVICE_POINTS[*point].0,
                    if *identification { "identification" } else { "other" },
                );
                push_timestamp(buf, first_free.0, first_free.1);
                buf.push_str(r#"","slot_at":""#);
                push_timestamp(buf, slot.0, slot.1);
                buf.push('"');
            }
        }
        buf.push_str("}\n");
    }
}

/// The `application_id` of a case.
fn application_id(case: CaseId) -> impl std::fmt::Display {
    struct ApplicationId(CaseId);
    impl std::fmt::Display for ApplicationId {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "APP-{}-{:07}", self.0.year, self.0.seq)
        }
    }
    ApplicationId(case)
}

/// Euros with two decimals from cents (`455`, `-12.05`).
fn push_cents(buf: &mut String, cents: i64) {
    let sign = if cents < 0 { "-" } else { "" };
    let (whole, frac) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
    if frac == 0 {
        let _ = write!(buf, "{sign}{whole}");
    } else {
        let _ = write!(buf, "{sign}{whole}.{frac:02}");
    }
}

/// A fraction in units of 10^-digits, without trailing zeros (`1`, `0.8`, `0.125`).
fn push_fraction(buf: &mut String, units: u32, digits: u32) {
    let one = 10u32.pow(digits);
    let _ = write!(buf, "{}", units / one);
    let frac = units % one;
    if frac != 0 {
        let text = format!("{frac:0width$}", width = digits as usize);
        let _ = write!(buf, ".{}", text.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_written_exactly() {
        let mut buf = String::new();
        for cents in [45_500, -1_205, 5, 0] {
            push_cents(&mut buf, cents);
            buf.push(' ');
        }
        for (units, digits) in [(1000, 3), (125, 3), (80, 2), (75, 2), (0, 3)] {
            push_fraction(&mut buf, units, digits);
            buf.push(' ');
        }
        assert_eq!(buf, "455 -12.05 0.05 0 1 0.125 0.8 0.75 0 ");
    }
}
