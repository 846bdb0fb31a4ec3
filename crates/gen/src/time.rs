//! Calendar arithmetic on UTC seconds and RFC 3339 formatting, without a clock or time zone database.

use std::fmt::Write;

pub(crate) const MINUTE: i64 = 60;
pub(crate) const HOUR: i64 = 3_600;
pub(crate) const DAY: i64 = 86_400;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month, day) of days since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i32, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// UTC seconds at the start of a month.
pub(crate) fn month_start(year: i32, month: u32) -> i64 {
    days_from_civil(year, month, 1) * DAY
}

/// UTC seconds at the start of a year.
pub(crate) fn year_start(year: i32) -> i64 {
    month_start(year, 1)
}

/// The UTC year of an instant.
pub(crate) fn year_of(at: i64) -> i32 {
    civil_from_days(at.div_euclid(DAY)).0
}

pub(crate) fn days_in_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 { days_from_civil(year + 1, 1, 1) } else { days_from_civil(year, month + 1, 1) };
    (next - days_from_civil(year, month, 1)) as u32
}

pub(crate) fn days_in_year(year: i32) -> u32 {
    (days_from_civil(year + 1, 1, 1) - days_from_civil(year, 1, 1)) as u32
}

/// Day of the week of an instant, 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(at: i64) -> u32 {
    // 1970-01-01 was a Thursday.
    (at.div_euclid(DAY) + 3).rem_euclid(7) as u32
}

/// Finnish time: +02:00, or +03:00 from the last Sunday of March to the last Sunday of October (01:00 UTC).
pub(crate) fn finnish_offset(at: i64) -> i32 {
    let year = year_of(at);
    let last_sunday = |month: u32| {
        let last = days_from_civil(year, month, 31) * DAY;
        last - i64::from((weekday(last) + 1) % 7) * DAY + HOUR
    };
    if (last_sunday(3)..last_sunday(10)).contains(&at) { 3 * HOUR as i32 } else { 2 * HOUR as i32 }
}

/// Appends `at` as RFC 3339 in the given UTC offset (seconds), `Z` for zero.
pub(crate) fn push_timestamp(buf: &mut String, at: i64, offset: i32) {
    let local = at + i64::from(offset);
    let (year, month, day) = civil_from_days(local.div_euclid(DAY));
    let secs = local.rem_euclid(DAY);
    let _ = write!(
        buf,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / HOUR,
        secs % HOUR / MINUTE,
        secs % MINUTE
    );
    if offset == 0 {
        buf.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        let _ = write!(buf, "{sign}{:02}:{:02}", minutes / 60, minutes % 60);
    }
}

/// `at` as an RFC 3339 string.
pub(crate) fn timestamp(at: i64, offset: i32) -> String {
    let mut buf = String::with_capacity(25);
    push_timestamp(&mut buf, at, offset);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-800_000, -1, 0, 1, 17_532, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(17_167), (2017, 1, 1));
        assert_eq!(days_in_month(2024, 2), 29);
        assert_eq!(days_in_month(2100, 2), 28);
        assert_eq!(days_in_year(2000), 366);
    }

    #[test]
    fn finnish_summer_time_follows_the_eu_rule() {
        // 2017: summer time from 26 March to 29 October, 01:00 UTC.
        assert_eq!(finnish_offset(month_start(2017, 3) + 25 * DAY + HOUR - 1), 2 * 3_600);
        assert_eq!(finnish_offset(month_start(2017, 3) + 25 * DAY + HOUR), 3 * 3_600);
        assert_eq!(finnish_offset(month_start(2017, 10) + 28 * DAY + HOUR - 1), 3 * 3_600);
        assert_eq!(finnish_offset(month_start(2017, 10) + 28 * DAY + HOUR), 2 * 3_600);
    }

    #[test]
    fn timestamps_format_with_their_offset() {
        let at = month_start(2024, 3) + 9 * HOUR + 15 * MINUTE;
        assert_eq!(timestamp(at, 0), "2024-03-01T09:15:00Z");
        assert_eq!(timestamp(at, 2 * 3_600), "2024-03-01T11:15:00+02:00");
        assert_eq!(timestamp(at, -5 * 3_600), "2024-03-01T04:15:00-05:00");
        assert_eq!(weekday(at), 4, "2024-03-01 was a Friday");
    }
}
