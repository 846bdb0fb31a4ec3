//! The generated agency adds up to the figures it is calibrated to, and behaves like one.

use permitflow_gen::{GenConfig, generate_year};

mod common;
use common::{Totals, totals};

/// Yearly figures of the Finnish Immigration Service in 2017 that scale 1 is calibrated to.
const APPLICATIONS: f64 = 123_000.0;
const DECISIONS: f64 = 140_000.0;
const FEES_EUR: f64 = 19.0e6;
const COSTS_EUR: f64 = 34.0e6;
const PERSON_YEARS: f64 = 660.0;
const IDENTIFICATIONS: f64 = 96_000.0;

fn year(scale: f64, year: i32) -> Totals {
    let config = GenConfig { scale, ..GenConfig::default() };
    let mut out = Vec::new();
    generate_year(&config, year, &mut out).expect("generate");
    totals(&out)
}

fn assert_near(name: &str, actual: f64, target: f64, tolerance: f64) {
    let error = (actual - target).abs() / target;
    assert!(error <= tolerance, "{name}: {actual:.0} is {:.1} % off {target:.0}", 100.0 * error);
}

fn assert_calibrated(totals: &Totals, scale: f64, tolerance: f64) {
    assert_near("applications", totals.applications as f64, APPLICATIONS * scale, tolerance);
    assert_near("decisions", totals.decisions as f64, DECISIONS * scale, tolerance);
    assert_near("fees", totals.fee_eur, FEES_EUR * scale, tolerance);
    assert_near("costs", totals.cost_eur, COSTS_EUR * scale, tolerance);
    assert_near("person-years", totals.person_years, PERSON_YEARS * scale, tolerance);
    assert_near("identification appointments", totals.identifications as f64, IDENTIFICATIONS * scale, 0.15);
}

#[test]
fn scale_one_year_resembles_migri_in_2017() {
    let totals = year(1.0, 2017);
    assert_calibrated(&totals, 1.0, 0.10);
    assert!((1_000..10_000).contains(&totals.appeals), "a few thousand appeals, got {}", totals.appeals);
}

#[test]
fn reduced_scale_keeps_the_proportions() {
    assert_calibrated(&year(0.05, 2017), 0.05, 0.15);
}

#[test]
fn decisions_follow_their_applications_and_some_have_none() {
    let config = GenConfig { scale: 0.02, ..GenConfig::default() };
    let mut both = Vec::new();
    generate_year(&config, 2017, &mut both).expect("2017");
    let first = totals(&both);
    let mut second = Vec::new();
    generate_year(&config, 2018, &mut second).expect("2018");
    let alone = totals(&second).decisions_without_application;
    both.extend(second);
    let together = totals(&both);
    assert!(first.decisions_without_application > 0, "backlog decisions of earlier applications");
    assert!(together.decisions_without_application < first.decisions_without_application + alone);
    assert_eq!(together.decisions_before_application, 0);
}

#[test]
fn e_service_and_automation_grow_over_the_years() {
    let early = year(0.02, 2017);
    let late = year(0.02, 2026);
    let share = |part: u64, whole: u64| part as f64 / whole as f64;
    assert!(share(early.e_service, early.applications) < share(late.e_service, late.applications) - 0.1);
    assert!(share(early.automated, early.decisions) < share(late.automated, late.decisions));
}

#[test]
fn producers_send_what_real_ones_do() {
    let totals = year(0.05, 2017);
    for offset in ["Z", "+02:00", "+03:00", "-05:00"] {
        assert!(totals.offsets.contains(offset), "an occurred_at in {offset}");
    }
    assert!(totals.staff_reports > totals.staff_months, "staff corrections");
    assert!(totals.negative_costs > 0, "cost corrections");
    let long_waits = totals.waits_over_30_days as f64 / totals.identifications as f64;
    assert!((0.01..0.3).contains(&long_waits), "{long_waits} of waits above 30 days");
    let returned = totals.appeals_returned as f64 / totals.appeals as f64;
    assert!((0.02..0.25).contains(&returned), "{returned} of appeals returned");
}
