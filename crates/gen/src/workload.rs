//! The valid events of one year: cases (applications, decisions, appeals), staff reports, costs and
//! appointments.
//!
//! Each kind of content has its own random stream keyed by (seed, year, stream), so a year's cases are
//! the same whichever year file is being written: the decisions and appeals in next year's file belong
//! to the applications in this year's file.

use std::ops::Range;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uuid::Builder;

use crate::GenConfig;
use crate::event::{Body, CaseId, Event, Outcome};
use crate::model::{
    FAMILY_MEMBER_FEE, IDENTIFICATIONS_PER_MONTH, OTHER_APPOINTMENT_SHARE, PERMITS, PermitType, Process,
    SEASON_APPOINTMENTS, SEASON_WAITS, SERVICE_POINTS, UNITS, agency_growth, automation_share, e_service_share,
};
use crate::time::{DAY, HOUR, MINUTE, days_in_month, finnish_offset, month_start, weekday, year_of, year_start};

/// Independent random streams of one year.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Cases = 1,
    Presentation,
    Staff,
    Costs,
    Appointments,
    Injection,
}

/// The random stream `stream` of `year`.
pub(crate) fn stream(seed: u64, year: i32, stream: Stream) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&year.to_le_bytes());
    key[12] = stream as u8;
    ChaCha8Rng::from_seed(key)
}

/// Longest processing time, days (longer draws are drawn again).
const MAX_DECISION_DAYS: f64 = 700.0;
/// Longest time from a decision to the court's resolution, days.
const MAX_APPEAL_DAYS: f64 = 700.0;
/// Years of earlier cases whose decisions or appeals can fall in a year: (700 + 700) days and two waits
/// for office hours < 4 years.
const LOOKBACK_YEARS: i32 = 4;
/// Share of appeals that end in the Supreme Administrative Court.
const SUPREME_COURT_SHARE: f64 = 0.06;
/// Share of decisions made by another unit than the one that received the application.
const OTHER_UNIT_DECISION_SHARE: f64 = 0.05;
/// Appeal results and their weights for asylum and for other permit types.
const APPEAL_RESULTS: [&str; 5] =
    ["upheld", "returned_legal_error", "returned_fact_assessment", "returned_new_evidence", "overturned"];
const APPEAL_RESULTS_ASYLUM: [f64; 5] = [0.82, 0.025, 0.045, 0.06, 0.05];
const APPEAL_RESULTS_OTHER: [f64; 5] = [0.86, 0.02, 0.03, 0.04, 0.05];

/// Employees at scale 1 in the base year (≈ 660 person-years after part-time, turnover and leave).
const EMPLOYEES: f64 = 755.0;
/// Part-time factors (hundredths) and their shares.
const PART_TIME: [(u32, f64); 5] = [(100, 0.82), (80, 0.08), (75, 0.03), (60, 0.04), (50, 0.03)];
/// Shares of employees who join or leave during the year.
const JOINER_SHARE: f64 = 0.05;
const LEAVER_SHARE: f64 = 0.05;
/// Shares of months with unpaid leave, and of months without pay at all.
const UNPAID_LEAVE_SHARE: f64 = 0.03;
const NO_PAY_SHARE: f64 = 0.005;
/// Share of staff reports followed by a correction (a second report with a later `occurred_at`).
const STAFF_CORRECTION_SHARE: f64 = 0.02;
/// Overhead shares (thousandths) of a case worker's time, drawn uniformly.
const OVERHEAD_SHARES: [u32; 6] = [0, 50, 100, 100, 150, 200];
/// Share of case workers split between two processes.
const SPLIT_SHARE: f64 = 0.4;
/// The unit doing administration, IT and management only.
const OVERHEAD_UNIT: usize = 11;

/// Monthly costs in euros: personnel per full-time equivalent; premises, ICT and other per employee.
/// Together ≈ 34 M€ a year at scale 1.
const PERSONNEL_EUR: f64 = 3_020.0;
const PREMISES_EUR: f64 = 500.0;
const ICT_EUR: f64 = 450.0;
const OTHER_EUR: f64 = 250.0;
/// Share of cost lines followed by a negative correction, and its size relative to the line.
const COST_CORRECTION_SHARE: f64 = 0.03;
const COST_CORRECTION_SIZE: (f64, f64) = (0.01, 0.1);
/// Relative noise of a booked amount.
const COST_NOISE: f64 = 0.03;

/// Shares of appointments booked for the first free slot, and spread of waits.
const FIRST_FREE_SLOT_TAKEN_SHARE: f64 = 0.55;
const WAIT_SIGMA: f64 = 0.7;
/// Median extra days when a later slot than the first free one is taken.
const LATER_SLOT_DAYS: f64 = 2.0;
/// Slot length.
const SLOT: i64 = 15 * MINUTE;

/// Share of events that name their producer.
const PRODUCER_SHARE: f64 = 0.6;
/// `occurred_at` offsets: shares of `Z` and of Finnish time; the rest is written in -05:00.
const UTC_SHARE: f64 = 0.55;
const FINNISH_SHARE: f64 = 0.44;
const FAR_OFFSET: i32 = -5 * HOUR as i32;

/// Relative activity by local hour for online actions (e-service, booking).
const HOURS_ONLINE: [f64; 24] = [
    0.2, 0.1, 0.1, 0.1, 0.1, 0.2, 0.4, 0.8, 1.2, 1.5, 1.6, 1.6, 1.5, 1.5, 1.5, 1.4, 1.3, 1.2, 1.2, 1.2, 1.1, 0.9, 0.6,
    0.4,
];
/// Office hours (local), for paper applications, bookkeeping and HR.
const OFFICE_HOURS: Range<i64> = 8..16;

/// Index of an item drawn with the given weights.
pub(crate) fn pick<T>(rng: &mut ChaCha8Rng, items: &[T], weight: impl Fn(&T) -> f64) -> usize {
    let total: f64 = items.iter().map(&weight).sum();
    let mut r = rng.random::<f64>() * total;
    for (i, item) in items.iter().enumerate() {
        r -= weight(item);
        if r < 0.0 {
            return i;
        }
    }
    items.iter().rposition(|item| weight(item) > 0.0).unwrap_or(0)
}

/// A log-normal draw with the given median, drawn again (a few times) while above `max`.
fn lognormal(rng: &mut ChaCha8Rng, median: f64, sigma: f64, max: f64) -> f64 {
    for _ in 0..16 {
        // Box–Muller; 1 − u keeps the logarithm finite.
        let u = 1.0 - rng.random::<f64>();
        let normal = (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * rng.random::<f64>()).cos();
        let value = median * (sigma * normal).exp();
        if value <= max {
            return value;
        }
    }
    max
}

/// A random instant of the UTC day starting at `day`, at a Finnish local time of the given kind (a night
/// hour may land on the next local day, so every instant stays in its day, month and year).
fn time_of_day(rng: &mut ChaCha8Rng, day: i64, office: bool) -> i64 {
    let hour = if office { rng.random_range(OFFICE_HOURS) } else { pick(rng, &HOURS_ONLINE, |w| *w) as i64 };
    let local = hour * HOUR + rng.random_range(0..HOUR);
    day + (local - i64::from(finnish_offset(day + 12 * HOUR))).rem_euclid(DAY)
}

/// A random office-hours instant on a weekday after `at` (the same day when there is time left).
fn office_time_after(rng: &mut ChaCha8Rng, at: i64) -> i64 {
    let mut day = (at + i64::from(finnish_offset(at))).div_euclid(DAY) * DAY;
    loop {
        if weekday(day) < 5 {
            let time = time_of_day(rng, day, true);
            if time > at {
                return time;
            }
        }
        day += DAY;
    }
}

/// The first slot at or after `at` in service-point opening hours (weekdays, office hours, local time).
fn next_open_slot(at: i64) -> i64 {
    let mut slot = ceil_to_slot(at);
    loop {
        let offset = i64::from(finnish_offset(slot));
        let local = slot + offset;
        let day = local.div_euclid(DAY) * DAY;
        let (open, close) = (day + OFFICE_HOURS.start * HOUR, day + OFFICE_HOURS.end * HOUR);
        let weekday = weekday(day) < 5;
        if weekday && (open..close).contains(&local) {
            return slot;
        }
        slot = if weekday && local < open { open } else { day + DAY + OFFICE_HOURS.start * HOUR } - offset;
    }
}

/// A random day of a month (UTC midnight), avoiding weekends when `weekdays_only`.
fn day_of_month(rng: &mut ChaCha8Rng, year: i32, month: u32, weekdays_only: bool) -> i64 {
    let start = month_start(year, month);
    let days = i64::from(days_in_month(year, month));
    let mut day = start + rng.random_range(0..days) * DAY;
    while weekdays_only && weekday(day) >= 5 {
        day = start + rng.random_range(0..days) * DAY;
    }
    day
}

fn eur_to_cents(eur: f64) -> i64 {
    (eur * 100.0).round() as i64
}

/// One application with everything that will happen to it.
struct Case {
    id: CaseId,
    permit: PermitType,
    applicant: u32,
    family_member: bool,
    e_service: bool,
    unit: usize,
    fee_cents: i64,
    submitted: i64,
    decided: i64,
    decision_unit: usize,
    outcome: Outcome,
    automated: bool,
    appeal: Option<Appeal>,
}

struct Appeal {
    resolved: i64,
    supreme_court: bool,
    result: &'static str,
}

/// The applications submitted in `year`, by permit type.
fn cases(config: &GenConfig, year: i32) -> Vec<Case> {
    let mut rng = stream(config.seed, year, Stream::Cases);
    let mut cases = Vec::new();
    let first_day = year_start(year);
    for permit in PERMITS {
        let profile = permit.profile();
        let count = (permit.yearly_volume(year) * config.scale).round() as usize;
        let season = permit.season(year);
        for _ in 0..count {
            let e_service = profile.e_service && rng.random_bool(e_service_share(year));
            let month = pick(&mut rng, season, |w| *w) as u32 + 1;
            let day = day_of_month(&mut rng, year, month, !e_service);
            let submitted = time_of_day(&mut rng, day, !e_service);
            let family_member = rng.random_bool(profile.family_member_share);
            let (fee_e, fee_paper) = if family_member { FAMILY_MEMBER_FEE } else { profile.fee };
            let fee_cents = match (rng.random_bool(profile.fee_free_share), e_service) {
                (true, _) => 0,
                (false, true) => fee_e * 100,
                (false, false) => fee_paper * 100,
            };
            let unit = profile.units[pick(&mut rng, profile.units, |u| u.1)].0;
            let median = profile.median_days * permit.backlog_factor(year);
            let days = lognormal(&mut rng, median, profile.sigma, MAX_DECISION_DAYS);
            let ready = submitted + ((days * DAY as f64) as i64).max(HOUR);
            let decision_unit = if rng.random_bool(OTHER_UNIT_DECISION_SHARE) {
                profile.units[pick(&mut rng, profile.units, |u| u.1)].0
            } else {
                unit
            };
            let outcome = Outcome::ALL[pick(&mut rng, &profile.outcomes, |w| *w)];
            let automated = profile.automatable
                && outcome == Outcome::Positive
                && rng.random_bool(automation_share(year_of(ready)));
            // People decide in office hours; the automated process whenever a case is ready.
            let decided = if automated { ready } else { office_time_after(&mut rng, ready) };
            let appealable = matches!(outcome, Outcome::Negative | Outcome::NotExamined);
            let appeal = (appealable && rng.random_bool(profile.appeal_share)).then(|| {
                let supreme_court = rng.random_bool(SUPREME_COURT_SHARE);
                let median = if supreme_court { 420.0 } else { 150.0 };
                let days = lognormal(&mut rng, median, 0.45, MAX_APPEAL_DAYS);
                let results = if permit == PermitType::Asylum { &APPEAL_RESULTS_ASYLUM } else { &APPEAL_RESULTS_OTHER };
                Appeal {
                    resolved: office_time_after(&mut rng, decided + (days * DAY as f64) as i64),
                    supreme_court,
                    result: APPEAL_RESULTS[pick(&mut rng, results, |w| *w)],
                }
            });
            cases.push(Case {
                id: CaseId { year, seq: 0 },
                permit,
                applicant: rng.random_range(0..1_000_000_000),
                family_member,
                e_service,
                unit,
                fee_cents,
                submitted,
                decided,
                decision_unit,
                outcome,
                automated,
                appeal,
            });
        }
    }
    // Numbered by day of submission, like a registry's diary numbers (a counting sort by day).
    let day = |case: &Case| ((case.submitted - first_day) / DAY) as usize;
    let mut next = [0u32; 367];
    for case in &cases {
        next[day(case) + 1] += 1;
    }
    let mut before = 0;
    for slot in &mut next {
        before += *slot;
        *slot = before;
    }
    for case in &mut cases {
        next[day(case)] += 1;
        case.id.seq = next[day(case)];
    }
    cases
}

/// Collects events, drawing their ids, offsets and producers from the year's presentation stream.
struct Emitter {
    rng: ChaCha8Rng,
    events: Vec<Event>,
}

impl Emitter {
    fn push(&mut self, at: i64, producer: &'static str, body: Body) {
        let offset = self.offset(at);
        let producer = self.rng.random_bool(PRODUCER_SHARE).then_some(producer);
        let id = Builder::from_random_bytes(self.rng.random()).into_uuid();
        self.events.push(Event { at, offset, id, producer, body });
    }

    fn offset(&mut self, at: i64) -> i32 {
        let r = self.rng.random::<f64>();
        if r < UTC_SHARE {
            0
        } else if r < UTC_SHARE + FINNISH_SHARE {
            finnish_offset(at)
        } else {
            FAR_OFFSET
        }
    }
}

/// Every valid event of `year`, in no particular order.
pub(crate) fn year_events(config: &GenConfig, year: i32) -> Vec<Event> {
    let mut emit = Emitter { rng: stream(config.seed, year, Stream::Presentation), events: Vec::new() };
    let span = year_start(year)..year_start(year + 1);
    for case_year in year - LOOKBACK_YEARS..=year {
        for case in cases(config, case_year) {
            emit_case(&mut emit, &case, &span);
        }
    }
    let staff = staff(config, year, &mut emit);
    costs(config, year, &staff, &mut emit);
    appointments(config, year, &mut emit);
    emit.events
}

/// The events of a case that fall in `span` (a year).
fn emit_case(emit: &mut Emitter, case: &Case, span: &Range<i64>) {
    let Case { id, permit, .. } = *case;
    if span.contains(&case.submitted) {
        let producer = if case.e_service { "enterfinland" } else { "uma" };
        let body = Body::Application {
            case: id,
            applicant: case.applicant,
            family_member: case.family_member,
            permit,
            e_service: case.e_service,
            unit: case.unit,
            fee_cents: case.fee_cents,
        };
        emit.push(case.submitted, producer, body);
    }
    if span.contains(&case.decided) {
        let body = Body::Decision {
            case: id,
            permit,
            outcome: case.outcome,
            unit: case.decision_unit,
            automated: case.automated,
        };
        emit.push(case.decided, "uma", body);
    }
    if let Some(appeal) = case.appeal.as_ref().filter(|a| span.contains(&a.resolved)) {
        let body = Body::Appeal { case: id, permit, supreme_court: appeal.supreme_court, result: appeal.result };
        emit.push(appeal.resolved, "uma", body);
    }
}

/// Full-time equivalents by process and headcount of one unit in one month (from the latest reports).
#[derive(Debug, Clone, Copy, Default)]
struct UnitMonth {
    fte: [f64; Process::COUNT],
    headcount: u32,
}

/// A case worker's time by process, in thousandths summing to 1000, weighted by the unit's workload.
fn allocation(rng: &mut ChaCha8Rng, unit: usize, year: i32) -> Vec<(Process, u32)> {
    let candidates: Vec<(PermitType, f64)> = PERMITS
        .iter()
        .filter_map(|&permit| {
            let profile = permit.profile();
            let (_, share) = profile.units.iter().find(|(u, _)| *u == unit)?;
            let weight = permit.yearly_volume(year) * profile.effort * share;
            (weight > 0.0).then_some((permit, weight))
        })
        .collect();
    if unit == OVERHEAD_UNIT || candidates.is_empty() {
        return vec![(Process::Overhead, 1000)];
    }
    let overhead = OVERHEAD_SHARES[rng.random_range(0..OVERHEAD_SHARES.len())];
    let mut rest = 1000 - overhead;
    let primary = pick(rng, &candidates, |c| c.1);
    let mut shares = Vec::with_capacity(3);
    if candidates.len() > 1 && rng.random_bool(SPLIT_SHARE) {
        let second = loop {
            let i = pick(rng, &candidates, |c| c.1);
            if i != primary {
                break i;
            }
        };
        // Between 50 % and 90 % of the case work on the primary process, in steps of 5 %.
        let primary_share = rest * rng.random_range(10..=18) / 20;
        shares.push((Process::PermitType(candidates[second].0), rest - primary_share));
        rest = primary_share;
    }
    shares.insert(0, (Process::PermitType(candidates[primary].0), rest));
    if overhead > 0 {
        shares.push((Process::Overhead, overhead));
    }
    shares
}

/// Monthly staff reports (with a few corrections); returns each unit's months for the costs.
fn staff(config: &GenConfig, year: i32, emit: &mut Emitter) -> Vec<[UnitMonth; 12]> {
    let mut rng = stream(config.seed, year, Stream::Staff);
    let mut units = vec![[UnitMonth::default(); 12]; UNITS.len()];
    let employees = (EMPLOYEES * config.scale * agency_growth(year)).round().max(1.0) as u32;
    let year_end = year_start(year + 1);
    for employee in 1..=employees {
        let unit = pick(&mut rng, &UNITS, |u| u.1);
        let factor = PART_TIME[pick(&mut rng, &PART_TIME, |p| p.1)].0;
        let mut shares = allocation(&mut rng, unit, year);
        let turnover = rng.random::<f64>();
        let (first, last) = if turnover < JOINER_SHARE {
            (rng.random_range(2..=12), 12)
        } else if turnover < JOINER_SHARE + LEAVER_SHARE {
            (1, rng.random_range(1..=11))
        } else {
            (1, 12)
        };
        for month in first..=last {
            let days = days_in_month(year, month);
            let mut paid_days = days;
            if month == first && first > 1 {
                paid_days = days - rng.random_range(1..days);
            }
            if month == last && last < 12 {
                paid_days = rng.random_range(1..=days);
            }
            let leave = rng.random::<f64>();
            if leave < NO_PAY_SHARE {
                paid_days = 0;
            } else if leave < NO_PAY_SHARE + UNPAID_LEAVE_SHARE {
                paid_days = paid_days.saturating_sub(rng.random_range(1..=days / 2));
            }
            let day = month_start(year, month) + i64::from(rng.random_range(days - 6..=days - 4)) * DAY;
            let mut at = time_of_day(&mut rng, day, true);
            let report = |paid_days, shares: &[(Process, u32)]| Body::Staff {
                employee,
                unit,
                year,
                month,
                paid_days,
                factor,
                allocation: shares.to_vec(),
            };
            emit.push(at, "kieku", report(paid_days, &shares));
            if rng.random_bool(STAFF_CORRECTION_SHARE) {
                paid_days = paid_days.saturating_sub(rng.random_range(0..=5));
                if rng.random_bool(0.5) {
                    shares = allocation(&mut rng, unit, year);
                }
                at = (at + rng.random_range(HOUR..20 * DAY)).min(year_end - 1);
                emit.push(at, "kieku", report(paid_days, &shares));
            }
            let unit_month = &mut units[unit][month as usize - 1];
            let fte = f64::from(paid_days) / f64::from(days) * f64::from(factor) / 100.0;
            for (process, share) in &shares {
                unit_month.fte[process.index()] += fte * f64::from(*share) / 1000.0;
            }
            unit_month.headcount += u32::from(paid_days > 0);
        }
    }
    units
}

/// Monthly cost bookings per unit, process and category, with a few negative corrections.
fn costs(config: &GenConfig, year: i32, staff: &[[UnitMonth; 12]], emit: &mut Emitter) {
    let mut rng = stream(config.seed, year, Stream::Costs);
    let year_end = year_start(year + 1);
    for (unit, months) in staff.iter().enumerate() {
        for (month, unit_month) in (1..=12).zip(months) {
            let total_fte: f64 = unit_month.fte.iter().sum();
            if unit_month.headcount == 0 || total_fte <= 0.0 {
                continue;
            }
            let headcount = f64::from(unit_month.headcount);
            let days = days_in_month(year, month);
            let mut lines = Vec::new();
            for (index, fte) in unit_month.fte.iter().enumerate().filter(|(_, fte)| **fte > 0.0) {
                let process = Process::from_index(index);
                lines.push((process, "personnel", fte * PERSONNEL_EUR));
                lines.push((process, "other", headcount * OTHER_EUR * fte / total_fte));
            }
            lines.push((Process::Overhead, "premises", headcount * PREMISES_EUR));
            lines.push((Process::Overhead, "ict", headcount * ICT_EUR));
            for (process, category, eur) in lines {
                let day = month_start(year, month) + i64::from(rng.random_range(days - 4..days)) * DAY;
                let at = time_of_day(&mut rng, day, true);
                let eur = eur * (1.0 + rng.random_range(-COST_NOISE..COST_NOISE));
                let booking = |amount_cents| Body::Cost { unit, process, year, month, category, amount_cents };
                emit.push(at, "kieku", booking(eur_to_cents(eur)));
                if rng.random_bool(COST_CORRECTION_SHARE) {
                    let correction = eur * rng.random_range(COST_CORRECTION_SIZE.0..COST_CORRECTION_SIZE.1);
                    let at = (at + rng.random_range(DAY..25 * DAY)).min(year_end - 1);
                    emit.push(at, "kieku", booking(-eur_to_cents(correction)));
                }
            }
        }
    }
}

/// Service-point bookings: mostly identification, some other services.
fn appointments(config: &GenConfig, year: i32, emit: &mut Emitter) {
    let mut rng = stream(config.seed, year, Stream::Appointments);
    let mut seq = 0;
    for month in 1..=12 {
        let season = SEASON_APPOINTMENTS[month as usize - 1];
        let identifications = (IDENTIFICATIONS_PER_MONTH * config.scale * agency_growth(year) * season).round() as u32;
        let others = (f64::from(identifications) * OTHER_APPOINTMENT_SHARE).round() as u32;
        for i in 0..identifications + others {
            let identification = i < identifications;
            let point = pick(&mut rng, &SERVICE_POINTS, |p| p.1);
            let day = day_of_month(&mut rng, year, month, false);
            let at = time_of_day(&mut rng, day, false);
            let median = SERVICE_POINTS[point].2 * SEASON_WAITS[month as usize - 1];
            let wait = lognormal(&mut rng, median, WAIT_SIGMA, f64::INFINITY) * DAY as f64;
            let first_free = next_open_slot(at + wait as i64);
            let slot = if rng.random_bool(FIRST_FREE_SLOT_TAKEN_SHARE) {
                first_free
            } else {
                let later = lognormal(&mut rng, LATER_SLOT_DAYS, 1.0, f64::INFINITY) * DAY as f64;
                next_open_slot(first_free + later as i64)
            };
            seq += 1;
            let first_free = (first_free, emit.offset(first_free));
            let slot = (slot, emit.offset(slot));
            let body = Body::Appointment { id: CaseId { year, seq }, point, identification, first_free, slot };
            emit.push(at, "ajanvaraus", body);
        }
    }
}

/// The first slot boundary at or after `at`.
fn ceil_to_slot(at: i64) -> i64 {
    at.div_euclid(SLOT) * SLOT + if at.rem_euclid(SLOT) == 0 { 0 } else { SLOT }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appeals_resolve_within_the_lookback() {
        // Each step may wait for office hours: at most a weekend and a day.
        let longest = MAX_DECISION_DAYS + MAX_APPEAL_DAYS + 2.0 * 4.0;
        assert!(longest < f64::from(LOOKBACK_YEARS * 365));
    }

    #[test]
    fn slots_are_in_opening_hours_and_never_early() {
        let start = month_start(2017, 3) + 23 * DAY; // Friday 24 March 2017, around the summer-time change
        for step in (0..10 * DAY).step_by(7 * MINUTE as usize) {
            let at = start + step;
            let slot = next_open_slot(at);
            let local = slot + i64::from(finnish_offset(slot));
            assert!(slot >= at && slot - at <= 3 * DAY);
            assert_eq!(slot % SLOT, 0);
            assert!(weekday(local) < 5 && OFFICE_HOURS.contains(&(local.rem_euclid(DAY) / HOUR)), "{slot}");
        }
    }

    #[test]
    fn people_decide_in_office_hours_after_the_case_is_ready() {
        let mut rng = stream(1, 2017, Stream::Cases);
        for step in 0..500 {
            let ready = month_start(2017, 10) + step * 37 * MINUTE;
            let decided = office_time_after(&mut rng, ready);
            let local = decided + i64::from(finnish_offset(decided));
            assert!(decided > ready && decided - ready <= 4 * DAY);
            assert!(weekday(local) < 5 && OFFICE_HOURS.contains(&(local.rem_euclid(DAY) / HOUR)));
        }
    }

    #[test]
    fn allocations_sum_to_one() {
        let mut rng = stream(1, 2017, Stream::Staff);
        for unit in 0..UNITS.len() {
            for _ in 0..200 {
                let shares = allocation(&mut rng, unit, 2017);
                assert_eq!(shares.iter().map(|s| s.1).sum::<u32>(), 1000, "{shares:?}");
            }
        }
    }
}
