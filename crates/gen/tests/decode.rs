//! Every generated line decodes with the contract's decoder exactly as the summary says.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use permitflow_gen::{GenConfig, generate};
use permitflow_schema::{Contract, Decoder, MAX_EVENT_BYTES, Position, Pseudonymiser};

mod common;

/// The decoder's rule for each kind of malformed line.
const RULE_OF_KIND: [(&str, &str); 19] = [
    ("invalid_json", "invalid_json"),
    ("not_an_object", "not_an_object"),
    ("invalid_utf8", "invalid_utf8"),
    ("line_too_large", "line_too_large"),
    ("lone_surrogate", "invalid_string"),
    ("missing_field", "missing_field"),
    ("wrong_type", "wrong_type"),
    ("unknown_event_type", "unknown_event_type"),
    ("unknown_schema_version", "unknown_schema_version"),
    ("unknown_enum_value", "unknown_enum_value"),
    ("invalid_timestamp", "invalid_timestamp"),
    ("invalid_month", "invalid_month"),
    ("negative_fee", "out_of_range"),
    ("too_many_decimals", "too_many_decimals"),
    ("allocation_sum", "allocation_sums_to_one"),
    ("paid_days_beyond_month", "paid_days_within_month"),
    ("part_time_factor_zero", "out_of_range"),
    ("first_free_slot_before_booking", "first_free_slot_not_before_booking"),
    ("slot_before_first_free_slot", "slot_not_before_first_free_slot"),
];

/// Late events are written at least this much after their neighbours (resent copies follow within 3 days).
const LATE_GAP_SECONDS: i64 = 3 * 86_400;

#[test]
fn every_line_decodes_as_the_summary_says() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = GenConfig {
        seed: 7,
        start_year: 2017,
        years: 2,
        scale: 0.03,
        duplicate_share: 0.02,
        late_share: 0.03,
        malformed_share: 0.01,
    };
    let mut progress = Vec::new();
    let summary = generate(&config, dir.path(), &mut |year, so_far| progress.push((year, so_far.lines)))?;
    let expected_files = [dir.path().join("events-2017.ndjson"), dir.path().join("events-2018.ndjson")];
    assert_eq!(summary.files, expected_files);
    assert_eq!(progress.iter().map(|p| p.0).collect::<Vec<_>>(), [2017, 2018]);
    assert_eq!(progress.last().map(|p| p.1), Some(summary.lines));

    let mut decoder = Decoder::new(Contract::embedded()?, Pseudonymiser::development());
    let mut accepted = 0;
    let mut rejected_by_rule: BTreeMap<String, u64> = BTreeMap::new();
    let mut first_copies: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let (mut resent, mut late, mut bytes) = (0, 0, 0);
    for file in &summary.files {
        let content = std::fs::read(file)?;
        bytes += content.len() as u64;
        assert_eq!(content.last(), Some(&b'\n'));
        let mut latest_written = i64::MIN;
        for (i, line) in content[..content.len() - 1].split(|b| *b == b'\n').enumerate() {
            let position = Position { source: "file:test", offset: i as i64 + 1 };
            if let Err(rejection) = decoder.decode(line, position) {
                *rejected_by_rule.entry(rejection.rule.to_string()).or_default() += 1;
                continue;
            }
            accepted += 1;
            let event: serde_json::Value = serde_json::from_slice(line)?;
            let id = event["event_id"].as_str().ok_or("event_id")?.to_string();
            match first_copies.entry(id) {
                Entry::Occupied(first) => {
                    assert_eq!(first.get(), line, "a resent event is identical");
                    resent += 1;
                }
                Entry::Vacant(slot) => {
                    slot.insert(line.to_vec());
                    let at = common::utc_seconds(event["occurred_at"].as_str().ok_or("occurred_at")?);
                    late += u64::from(at < latest_written.saturating_sub(LATE_GAP_SECONDS));
                    latest_written = latest_written.max(at);
                }
            }
        }
        decoder.finish()?;
    }

    assert_eq!(bytes, summary.bytes);
    assert_eq!(rejected_by_rule.values().sum::<u64>(), summary.malformed);
    assert_eq!(accepted, summary.lines - summary.malformed);
    assert_eq!(first_copies.len() as u64, summary.valid_events);
    assert_eq!(summary.by_type.values().sum::<u64>(), summary.valid_events);
    assert_eq!(resent, summary.duplicates);
    assert!(summary.duplicates > 0 && summary.late > 0);
    assert!(late <= summary.late && late * 10 >= summary.late * 8, "{late} of {} late events seen", summary.late);

    let rule_of = BTreeMap::from(RULE_OF_KIND);
    let mut expected_rules: BTreeMap<String, u64> = BTreeMap::new();
    for (kind, count) in &summary.malformed_by_kind {
        let rule = rule_of.get(kind.as_str()).ok_or_else(|| format!("unexpected kind {kind}"))?;
        *expected_rules.entry(rule.to_string()).or_default() += count;
    }
    assert_eq!(summary.malformed_by_kind.len(), RULE_OF_KIND.len(), "every kind is used");
    assert_eq!(rejected_by_rule, expected_rules);
    Ok(())
}

#[test]
fn large_lines_stay_rare_whatever_the_share() -> Result<(), Box<dyn std::error::Error>> {
    let config = GenConfig { scale: 0.01, malformed_share: 0.5, ..GenConfig::default() };
    let mut out = Vec::new();
    let summary = permitflow_gen::generate_year(&config, 2019, &mut out)?;
    assert_eq!(summary.malformed_by_kind.get("line_too_large"), Some(&2));
    let large = out.split(|b| *b == b'\n').filter(|line| line.len() > MAX_EVENT_BYTES).count();
    assert_eq!(large, 2);
    Ok(())
}
