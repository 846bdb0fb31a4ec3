//! The agency being simulated: permit types and their volumes, fees, processing times and
//! outcomes; units, service points and the yearly trends. Calibrated so that one year at
//! scale 1 resembles the Finnish Immigration Service (Migri) in 2017.

/// The year the base volumes describe.
pub(crate) const BASE_YEAR: i32 = 2017;

/// A permit type (the contract's `permit_type`), in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PermitType {
    WorkSpecialist,
    WorkStartup,
    WorkEmployee,
    WorkOther,
    Study,
    Family,
    ExtendedPermit,
    PermanentPermit,
    EuRegistration,
    Citizenship,
    Asylum,
    TemporaryProtection,
    TravelDocument,
}

impl PermitType {
    pub(crate) fn as_str(self) -> &'static str {
        self.profile().name
    }

    pub(crate) fn profile(self) -> &'static Profile {
        &PROFILES[self as usize]
    }

    /// Applications per year at scale 1, with the trend and the exceptional years.
    pub(crate) fn yearly_volume(self, year: i32) -> f64 {
        let profile = self.profile();
        match self {
            PermitType::Asylum => profile.yearly * asylum_wave(year),
            PermitType::TemporaryProtection => match year {
                ..2022 => 0.0,
                2022 => 40_000.0,
                2023 => 12_000.0,
                2024 => 6_000.0,
                _ => 4_000.0,
            },
            _ => profile.yearly * (1.0 + profile.growth * f64::from(year - BASE_YEAR)).clamp(0.4, 2.5),
        }
    }

    /// Monthly weights of submissions (January first).
    pub(crate) fn season(self, year: i32) -> &'static [f64; 12] {
        match (self, year) {
            (PermitType::Asylum, 2015) => &ASYLUM_WAVE,
            (PermitType::TemporaryProtection, 2022) => &WAR_2022,
            _ => self.profile().season,
        }
    }

    /// Processing times grew while the 2015 asylum wave was worked off (staff moved to asylum), so
    /// 2017 decided much of the 2015-2016 backlog: more decisions than applications that year.
    pub(crate) fn backlog_factor(self, submitted_year: i32) -> f64 {
        match (self, submitted_year) {
            (PermitType::Asylum, 2015) => 2.2,
            (PermitType::Asylum, 2016) => 1.7,
            (_, 2015) => 1.2,
            (_, 2016) => 1.45,
            _ => 1.0,
        }
    }
}

/// Asylum applications relative to 2017 (the 2015 wave, then a slow decline).
fn asylum_wave(year: i32) -> f64 {
    match year {
        ..2015 => 0.7,
        2015 => 6.5,
        2016 => 1.13,
        2017 => 1.0,
        2018 | 2019 => 0.9,
        2020 => 0.65,
        2021 => 0.6,
        _ => 0.95,
    }
}

/// Everything that describes one permit type's applications and decisions.
pub(crate) struct Profile {
    pub name: &'static str,
    /// Applications submitted in the base year at scale 1.
    pub yearly: f64,
    /// Yearly growth of applications, relative to the base year.
    pub growth: f64,
    pub season: &'static [f64; 12],
    /// Share of applicants who are family members of the main applicant (they pay [`FAMILY_MEMBER_FEE`]).
    pub family_member_share: f64,
    /// Fee in whole euros: e-service, paper.
    pub fee: (i64, i64),
    /// Share of applications exempt from the fee (e.g. protection status, minors).
    pub fee_free_share: f64,
    /// Whether the application can be made in the e-service.
    pub e_service: bool,
    /// Median processing time in days and the log-normal spread.
    pub median_days: f64,
    pub sigma: f64,
    /// Outcome weights: positive, negative, not_examined, lapsed.
    pub outcomes: [f64; 4],
    /// Whether positive decisions of this type can be automated.
    pub automatable: bool,
    /// Share of negative or not-examined decisions that are appealed.
    pub appeal_share: f64,
    /// Units deciding this type, with weights (indexes into [`UNITS`]).
    pub units: &'static [(usize, f64)],
    /// Relative working time per application (for the staff allocation inside a unit).
    pub effort: f64,
}

/// Fee of a family member of a work or study permit holder, whole euros: e-service, paper.
pub(crate) const FAMILY_MEMBER_FEE: (i64, i64) = (470, 520);

#[rustfmt::skip]
mod seasons {
    //! Monthly weights of submissions, January first.
    pub const GENERAL: [f64; 12] = [1.0, 1.0, 1.1, 1.05, 1.05, 1.0, 0.8, 0.9, 1.05, 1.1, 1.05, 0.9];
    pub const WORK: [f64; 12] = [1.05, 1.05, 1.15, 1.1, 1.05, 0.95, 0.75, 0.9, 1.05, 1.1, 1.0, 0.85];
    pub const STUDY: [f64; 12] = [0.6, 0.5, 0.6, 1.0, 1.6, 2.0, 1.9, 1.2, 0.7, 0.6, 0.6, 0.7];
    pub const CITIZENSHIP: [f64; 12] = [1.1, 1.0, 1.0, 1.0, 1.0, 0.95, 0.85, 0.9, 1.0, 1.05, 1.05, 1.1];
    pub const ASYLUM: [f64; 12] = [0.9, 0.85, 0.9, 0.9, 0.95, 1.0, 1.0, 1.05, 1.15, 1.15, 1.1, 1.0];
    /// Autumn 2015.
    pub const ASYLUM_WAVE: [f64; 12] = [0.3, 0.3, 0.3, 0.3, 0.5, 0.8, 1.5, 3.5, 8.0, 9.0, 5.0, 2.5];
    /// From the end of February 2022.
    pub const WAR_2022: [f64; 12] = [0.0, 0.1, 3.0, 2.0, 1.5, 1.2, 1.0, 1.0, 0.9, 0.9, 0.8, 0.8];
}
use seasons::*;

/// Indexed by `PermitType as usize`. Volumes and fees are calibrated to about 123,000 applications and
/// 19 M€ of fees in the base year.
#[rustfmt::skip]
static PROFILES: [Profile; 13] = [
    Profile { name: "work_specialist", yearly: 3_500.0, growth: 0.12, season: &WORK, family_member_share: 0.45,
        fee: (455, 500), fee_free_share: 0.0, e_service: true, median_days: 10.0, sigma: 0.5,
        outcomes: [0.95, 0.02, 0.0, 0.03], automatable: true, appeal_share: 0.1, units: &[(3, 0.7), (4, 0.3)], effort: 1.0 },
    Profile { name: "work_startup", yearly: 300.0, growth: 0.1, season: &WORK, family_member_share: 0.3,
        fee: (350, 350), fee_free_share: 0.0, e_service: true, median_days: 12.0, sigma: 0.5,
        outcomes: [0.75, 0.2, 0.0, 0.05], automatable: false, appeal_share: 0.2, units: &[(3, 1.0)], effort: 2.0 },
    Profile { name: "work_employee", yearly: 5_000.0, growth: 0.1, season: &WORK, family_member_share: 0.1,
        fee: (455, 500), fee_free_share: 0.0, e_service: true, median_days: 55.0, sigma: 0.5,
        outcomes: [0.8, 0.15, 0.0, 0.05], automatable: false, appeal_share: 0.2, units: &[(3, 0.6), (4, 0.4)], effort: 2.0 },
    Profile { name: "work_other", yearly: 4_000.0, growth: 0.08, season: &WORK, family_member_share: 0.2,
        fee: (300, 350), fee_free_share: 0.0, e_service: true, median_days: 40.0, sigma: 0.5,
        outcomes: [0.85, 0.1, 0.0, 0.05], automatable: false, appeal_share: 0.15, units: &[(3, 0.4), (4, 0.6)], effort: 1.5 },
    Profile { name: "study", yearly: 6_500.0, growth: 0.08, season: &STUDY, family_member_share: 0.05,
        fee: (300, 350), fee_free_share: 0.0, e_service: true, median_days: 28.0, sigma: 0.5,
        outcomes: [0.88, 0.08, 0.0, 0.04], automatable: true, appeal_share: 0.1, units: &[(4, 1.0)], effort: 1.0 },
    Profile { name: "family", yearly: 11_000.0, growth: 0.03, season: &GENERAL, family_member_share: 0.0,
        fee: (455, 520), fee_free_share: 0.5, e_service: true, median_days: 190.0, sigma: 0.45,
        outcomes: [0.65, 0.3, 0.0, 0.05], automatable: false, appeal_share: 0.3, units: &[(5, 0.6), (6, 0.4)], effort: 3.0 },
    Profile { name: "extended_permit", yearly: 38_000.0, growth: 0.03, season: &GENERAL, family_member_share: 0.0,
        fee: (120, 160), fee_free_share: 0.55, e_service: true, median_days: 50.0, sigma: 0.5,
        outcomes: [0.93, 0.04, 0.0, 0.03], automatable: true, appeal_share: 0.1, units: &[(6, 0.3), (7, 0.7)], effort: 0.8 },
    Profile { name: "permanent_permit", yearly: 12_000.0, growth: 0.03, season: &GENERAL, family_member_share: 0.0,
        fee: (160, 220), fee_free_share: 0.55, e_service: true, median_days: 60.0, sigma: 0.5,
        outcomes: [0.93, 0.04, 0.0, 0.03], automatable: true, appeal_share: 0.1, units: &[(7, 1.0)], effort: 0.8 },
    Profile { name: "eu_registration", yearly: 16_500.0, growth: 0.02, season: &GENERAL, family_member_share: 0.0,
        fee: (54, 64), fee_free_share: 0.0, e_service: true, median_days: 45.0, sigma: 0.5,
        outcomes: [0.95, 0.02, 0.0, 0.03], automatable: true, appeal_share: 0.05, units: &[(8, 1.0)], effort: 0.5 },
    Profile { name: "citizenship", yearly: 9_500.0, growth: 0.03, season: &CITIZENSHIP, family_member_share: 0.0,
        fee: (350, 440), fee_free_share: 0.0, e_service: true, median_days: 300.0, sigma: 0.35,
        outcomes: [0.84, 0.1, 0.0, 0.06], automatable: true, appeal_share: 0.15, units: &[(9, 0.65), (10, 0.35)], effort: 2.0 },
    Profile { name: "asylum", yearly: 5_000.0, growth: 0.0, season: &ASYLUM, family_member_share: 0.0,
        fee: (0, 0), fee_free_share: 1.0, e_service: false, median_days: 170.0, sigma: 0.55,
        outcomes: [0.38, 0.42, 0.12, 0.08], automatable: false, appeal_share: 0.3, units: &[(0, 0.45), (1, 0.3), (2, 0.25)], effort: 12.0 },
    Profile { name: "temporary_protection", yearly: 0.0, growth: 0.0, season: &GENERAL, family_member_share: 0.0,
        fee: (0, 0), fee_free_share: 1.0, e_service: false, median_days: 12.0, sigma: 0.5,
        outcomes: [0.97, 0.01, 0.01, 0.01], automatable: false, appeal_share: 0.2, units: &[(1, 0.5), (2, 0.5)], effort: 1.0 },
    Profile { name: "travel_document", yearly: 11_000.0, growth: 0.02, season: &GENERAL, family_member_share: 0.0,
        fee: (90, 120), fee_free_share: 0.3, e_service: true, median_days: 21.0, sigma: 0.5,
        outcomes: [0.9, 0.05, 0.0, 0.05], automatable: false, appeal_share: 0.1, units: &[(8, 0.5), (10, 0.5)], effort: 0.5 },
];

/// Every permit type, in the contract's order.
pub(crate) const PERMITS: [PermitType; 13] = [
    PermitType::WorkSpecialist,
    PermitType::WorkStartup,
    PermitType::WorkEmployee,
    PermitType::WorkOther,
    PermitType::Study,
    PermitType::Family,
    PermitType::ExtendedPermit,
    PermitType::PermanentPermit,
    PermitType::EuRegistration,
    PermitType::Citizenship,
    PermitType::Asylum,
    PermitType::TemporaryProtection,
    PermitType::TravelDocument,
];

/// A process of the staff allocation and the costs: a permit type, or overhead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Process {
    PermitType(PermitType),
    Overhead,
}

impl Process {
    /// Number of processes (for per-process arrays).
    pub(crate) const COUNT: usize = PERMITS.len() + 1;

    pub(crate) fn index(self) -> usize {
        match self {
            Process::PermitType(p) => p as usize,
            Process::Overhead => PERMITS.len(),
        }
    }

    pub(crate) fn from_index(index: usize) -> Process {
        PERMITS.get(index).map_or(Process::Overhead, |p| Process::PermitType(*p))
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Process::PermitType(p) => p.as_str(),
            Process::Overhead => "overhead",
        }
    }
}

/// Processing units: code and headcount weight. The last one does administration, IT and management.
pub(crate) const UNITS: [(&str, f64); 12] = [
    ("U01", 120.0),
    ("U02", 90.0),
    ("U03", 70.0),
    ("U04", 50.0),
    ("U05", 35.0),
    ("U06", 45.0),
    ("U07", 45.0),
    ("U08", 50.0),
    ("U09", 35.0),
    ("U10", 50.0),
    ("U11", 30.0),
    ("U12", 100.0),
];

/// Service points: name, weight of bookings, median wait for the first free slot in days.
pub(crate) const SERVICE_POINTS: [(&str, f64, f64); 14] = [
    ("helsinki", 30.0, 14.0),
    ("espoo", 10.0, 10.0),
    ("vantaa", 9.0, 10.0),
    ("tampere", 9.0, 7.0),
    ("turku", 9.0, 7.0),
    ("oulu", 6.0, 5.0),
    ("jyvaskyla", 4.0, 4.0),
    ("kuopio", 4.0, 4.0),
    ("lahti", 4.0, 4.0),
    ("lappeenranta", 3.0, 3.0),
    ("joensuu", 3.0, 3.0),
    ("vaasa", 3.0, 3.0),
    ("pori", 3.0, 3.0),
    ("rovaniemi", 3.0, 3.0),
];

/// Identification appointments per month at scale 1 in the base year.
pub(crate) const IDENTIFICATIONS_PER_MONTH: f64 = 8_000.0;
/// `other` appointments per identification appointment.
pub(crate) const OTHER_APPOINTMENT_SHARE: f64 = 0.1;
/// Bookings by month (summer: students and workers arriving).
pub(crate) const SEASON_APPOINTMENTS: [f64; 12] = [0.85, 0.9, 1.0, 1.0, 1.05, 1.2, 1.25, 1.2, 1.0, 0.95, 0.9, 0.7];
/// Waits grow when bookings peak.
pub(crate) const SEASON_WAITS: [f64; 12] = [0.9, 0.9, 1.0, 1.0, 1.1, 1.4, 1.6, 1.5, 1.1, 1.0, 0.9, 0.8];

/// Share of e-service applications among types that have an e-service, by year (60 % in 2017, +3 pp a year).
pub(crate) fn e_service_share(year: i32) -> f64 {
    (0.6 + 0.03 * f64::from(year - BASE_YEAR)).clamp(0.3, 0.95)
}

/// Share of positive decisions of automatable types made (partially) automatically, by year.
pub(crate) fn automation_share(year: i32) -> f64 {
    (0.03 + 0.025 * f64::from(year - BASE_YEAR)).clamp(0.0, 0.5)
}

/// Staff and appointment volume relative to the base year.
pub(crate) fn agency_growth(year: i32) -> f64 {
    (1.0 + 0.02 * f64::from(year - BASE_YEAR)).clamp(0.6, 1.6)
}
