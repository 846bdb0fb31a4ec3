//! One test per rejection rule of the contract (`events.md`, "Rejections"): each starts from a valid
//! event, breaks one thing, and checks the rule and the field named. Plus: ingest never panics.

use permitflow_schema::{Contract, Decoder, MAX_EVENT_BYTES, Position, Pseudonymiser, Rejection};
use proptest::prelude::*;
use serde_json::{Value, json};

fn decoder() -> Decoder {
    Decoder::new(Contract::embedded().expect("embedded contract"), Pseudonymiser::development())
}

fn decode(line: &[u8]) -> Result<usize, Rejection> {
    decoder().decode(line, Position { source: "test", offset: 1 })
}

fn envelope(event_type: &str) -> Value {
    json!({
        "event_id": "3f1c2a9e-6a7b-4c1d-9e2f-0a1b2c3d4e5f",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": "2024-03-01T09:15:00+02:00",
        "producer": "test",
    })
}

fn valid(event_type: &str) -> Value {
    let mut event = envelope(event_type);
    let fields = match event_type {
        "application.submitted" => json!({"application_id": "A1", "applicant_ref": "P1", "applicant_role": "main",
            "permit_type": "study", "channel": "e_service", "unit": "U1", "fee_eur": 350.00}),
        "decision.made" => json!({"decision_id": "D1", "application_id": "A1", "permit_type": "study",
            "outcome": "positive", "unit": "U1", "automated": false}),
        "appeal.resolved" => json!({"appeal_id": "X1", "decision_id": "D1", "application_id": "A1",
            "permit_type": "asylum", "court": "administrative_court", "result": "upheld"}),
        "staff.month_reported" => json!({"employee_ref": "E1", "unit": "U1", "month": "2024-02", "paid_days": 29,
            "part_time_factor": 0.8, "allocation": {"study": 0.5, "family": 0.25, "overhead": 0.25}}),
        "cost.booked" => json!({"unit": "U1", "process": "overhead", "month": "2024-02",
            "cost_category": "personnel", "amount_eur": -150.5}),
        "appointment.booked" => {
            json!({"appointment_id": "B1", "service_point": "helsinki", "service": "identification",
            "first_free_slot_at": "2024-03-05T08:00:00Z", "slot_at": "2024-03-05T10:30:00+02:00"})
        }
        other => panic!("no fixture for {other}"),
    };
    for (key, value) in fields.as_object().expect("object") {
        event[key] = value.clone();
    }
    event
}

/// The event with `field` replaced (or removed, for `None`).
fn with(event_type: &str, field: &str, value: Option<Value>) -> Vec<u8> {
    let mut event = valid(event_type);
    let object = event.as_object_mut().expect("object");
    match value {
        Some(value) => {
            object.insert(field.to_string(), value);
        }
        None => {
            object.remove(field);
        }
    }
    serde_json::to_vec(&event).expect("serialise")
}

#[track_caller]
fn assert_rejected(line: &[u8], rule: &str, field: Option<&str>) {
    let rejection = decode(line).expect_err("must be rejected");
    assert_eq!(rejection.rule, rule, "{rejection:?}");
    assert_eq!(rejection.field.as_deref(), field, "{rejection:?}");
    assert!(!rejection.message.is_empty(), "a rejection explains itself: {rejection:?}");
}

#[test]
fn every_fixture_event_is_accepted() {
    for event_type in [
        "application.submitted",
        "decision.made",
        "appeal.resolved",
        "staff.month_reported",
        "cost.booked",
        "appointment.booked",
    ] {
        let line = serde_json::to_vec(&valid(event_type)).expect("serialise");
        assert!(decode(&line).is_ok(), "{event_type}: {:?}", decode(&line));
    }
}

#[test]
fn unknown_extra_fields_are_ignored() {
    assert!(decode(&with("decision.made", "reviewer_note", Some(json!({"a": [1, 2]})))).is_ok());
}

#[test]
fn invalid_json_is_rejected() {
    assert_rejected(br#"{"event_id": "x", "event_type": "#, "invalid_json", None);
}

#[test]
fn a_json_value_that_is_not_an_object_is_rejected() {
    assert_rejected(b"[1, 2, 3]", "not_an_object", None);
    assert_rejected(b"\"decision.made\"", "not_an_object", None);
}

#[test]
fn invalid_utf8_is_rejected() {
    let mut line = with("decision.made", "unit", Some(json!("U1")));
    let at = line.windows(4).position(|w| w == b"\"U1\"").expect("unit value");
    line[at + 1] = 0xFF;
    assert_rejected(&line, "invalid_utf8", None);
}

#[test]
fn a_line_over_one_mebibyte_is_rejected() {
    let line = with("decision.made", "producer", Some(json!("x".repeat(MAX_EVENT_BYTES))));
    assert!(line.len() > MAX_EVENT_BYTES);
    assert_rejected(&line, "line_too_large", None);
}

#[test]
fn a_lone_surrogate_escape_is_rejected() {
    let line = with("decision.made", "unit", Some(json!("SURROGATE")));
    let text = String::from_utf8(line).expect("utf-8").replace("SURROGATE", "U\\ud800");
    assert_rejected(text.as_bytes(), "invalid_string", Some("unit"));
}

#[test]
fn a_duplicate_key_is_rejected() {
    // Which of two values counts is ambiguous, so neither does.
    let line = String::from_utf8(with("decision.made", "unit", Some(json!("U1")))).expect("utf-8");
    let line = line.replacen("\"unit\":\"U1\"", "\"unit\":\"U1\",\"unit\":\"U2\"", 1);
    assert_rejected(line.as_bytes(), "duplicate_field", Some("unit"));
}

#[test]
fn a_missing_field_is_rejected() {
    assert_rejected(&with("decision.made", "outcome", None), "missing_field", Some("outcome"));
    assert_rejected(&with("decision.made", "event_id", None), "missing_field", Some("event_id"));
}

#[test]
fn a_wrongly_typed_field_is_rejected() {
    assert_rejected(&with("decision.made", "automated", Some(json!("yes"))), "wrong_type", Some("automated"));
    assert_rejected(&with("application.submitted", "fee_eur", Some(json!("350"))), "wrong_type", Some("fee_eur"));
    assert_rejected(&with("staff.month_reported", "paid_days", Some(json!(20.5))), "wrong_type", Some("paid_days"));
}

#[test]
fn a_string_field_given_another_json_value_is_rejected_and_the_kind_named() {
    let cases = [
        ("unit", json!(7), "a number"),
        ("outcome", json!(-1.5), "a number"),
        ("occurred_at", json!(true), "a boolean"),
        ("event_id", json!({"id": "3f1c2a9e-6a7b-4c1d-9e2f-0a1b2c3d4e5f"}), "an object"),
        ("decision_id", json!(["D1"]), "an array"),
        ("unit", Value::Null, "null"),
    ];
    for (field, value, kind) in cases {
        let line = with("decision.made", field, Some(value));
        let rejection = decode(&line).expect_err("must be rejected");
        assert_eq!((&*rejection.rule, rejection.field.as_deref()), ("wrong_type", Some(field)), "{rejection:?}");
        assert_eq!(rejection.message, format!("expected a string, got {kind}"));
    }
    assert_eq!(decode(&with("decision.made", "producer", Some(Value::Null))), Ok(1), "an optional string may be null");
}

#[test]
fn an_unknown_event_type_is_rejected() {
    assert_rejected(
        &with("decision.made", "event_type", Some(json!("decision.unmade"))),
        "unknown_event_type",
        Some("event_type"),
    );
}

#[test]
fn an_unknown_schema_version_is_rejected() {
    assert_rejected(
        &with("decision.made", "schema_version", Some(json!(2))),
        "unknown_schema_version",
        Some("schema_version"),
    );
}

#[test]
fn an_unknown_enum_value_is_rejected() {
    assert_rejected(&with("decision.made", "outcome", Some(json!("maybe"))), "unknown_enum_value", Some("outcome"));
    assert_rejected(&with("cost.booked", "process", Some(json!("catering"))), "unknown_enum_value", Some("process"));
    let bad_allocation = json!({"study": 0.5, "lunch": 0.5});
    assert_rejected(
        &with("staff.month_reported", "allocation", Some(bad_allocation)),
        "unknown_enum_value",
        Some("allocation"),
    );
}

#[test]
fn an_unparsable_timestamp_is_rejected() {
    for bad in ["2024-03-01 09:15:00", "2024-03-01T09:15:00", "2024-02-30T09:15:00Z", "yesterday"] {
        assert_rejected(
            &with("decision.made", "occurred_at", Some(json!(bad))),
            "invalid_timestamp",
            Some("occurred_at"),
        );
    }
}

#[test]
fn a_month_like_2024_13_is_rejected() {
    assert_rejected(&with("staff.month_reported", "month", Some(json!("2024-13"))), "invalid_month", Some("month"));
    assert_rejected(&with("cost.booked", "month", Some(json!("2024-3"))), "invalid_month", Some("month"));
}

#[test]
fn an_event_id_that_is_not_a_uuid_is_rejected() {
    assert_rejected(&with("decision.made", "event_id", Some(json!("evt-1"))), "invalid_uuid", Some("event_id"));
}

#[test]
fn an_empty_identifier_is_rejected() {
    assert_rejected(&with("decision.made", "decision_id", Some(json!(""))), "empty_string", Some("decision_id"));
}

#[test]
fn a_negative_fee_is_rejected() {
    assert_rejected(&with("application.submitted", "fee_eur", Some(json!(-1))), "out_of_range", Some("fee_eur"));
}

#[test]
fn more_than_two_decimals_are_rejected() {
    assert_rejected(
        &with("application.submitted", "fee_eur", Some(json!(350.005))),
        "too_many_decimals",
        Some("fee_eur"),
    );
    assert_rejected(&with("cost.booked", "amount_eur", Some(json!(-0.001))), "too_many_decimals", Some("amount_eur"));
}

#[test]
fn an_allocation_not_summing_to_one_is_rejected() {
    let allocation = json!({"study": 0.5, "overhead": 0.49});
    assert_rejected(
        &with("staff.month_reported", "allocation", Some(allocation)),
        "allocation_sums_to_one",
        Some("allocation"),
    );
    let within_tolerance = json!({"study": 0.3335, "family": 0.3335, "overhead": 0.3335});
    assert!(decode(&with("staff.month_reported", "allocation", Some(within_tolerance))).is_ok());
    let negative = json!({"study": 1.5, "overhead": -0.5});
    assert_rejected(
        &with("staff.month_reported", "allocation", Some(negative)),
        "out_of_range",
        Some("allocation.overhead"),
    );
}

#[test]
fn paid_days_beyond_the_month_are_rejected() {
    // February 2024 has 29 days (the fixture's 29 is accepted); 30 is not, and February 2023 has 28.
    assert_rejected(
        &with("staff.month_reported", "paid_days", Some(json!(30))),
        "paid_days_within_month",
        Some("paid_days"),
    );
    let mut event = valid("staff.month_reported");
    event["month"] = json!("2023-02");
    let line = serde_json::to_vec(&event).expect("serialise");
    assert_rejected(&line, "paid_days_within_month", Some("paid_days"));
}

#[test]
fn a_part_time_factor_of_zero_is_rejected() {
    assert_rejected(
        &with("staff.month_reported", "part_time_factor", Some(json!(0))),
        "out_of_range",
        Some("part_time_factor"),
    );
    assert_rejected(
        &with("staff.month_reported", "part_time_factor", Some(json!(1.01))),
        "out_of_range",
        Some("part_time_factor"),
    );
}

#[test]
fn a_first_free_slot_before_the_booking_is_rejected() {
    // Booked 2024-03-01T07:15Z; a first free slot at 07:00Z is earlier.
    let slot = Some(json!("2024-03-01T07:00:00Z"));
    assert_rejected(
        &with("appointment.booked", "first_free_slot_at", slot),
        "first_free_slot_not_before_booking",
        Some("first_free_slot_at"),
    );
}

#[test]
fn a_slot_before_the_first_free_slot_is_rejected_when_compared_in_utc() {
    // 10:00+03:00 is 07:00Z, before the first free slot at 08:00Z, although "10:00" > "08:00" as text.
    let line = with("appointment.booked", "slot_at", Some(json!("2024-03-05T10:00:00+03:00")));
    assert_rejected(&line, "slot_not_before_first_free_slot", Some("slot_at"));
    // 09:00-05:00 is 14:00Z, after 08:00Z, although "09:00" < "10:00" as text: accepted.
    assert!(decode(&with("appointment.booked", "slot_at", Some(json!("2024-03-05T09:00:00-05:00")))).is_ok());
}

#[test]
fn a_rejection_names_the_event_when_it_could_be_read() {
    let rejection = decode(&with("decision.made", "outcome", Some(json!("maybe")))).expect_err("rejected");
    assert_eq!(rejection.event_type.as_deref(), Some("decision.made"));
    assert_eq!(rejection.event_id.as_deref(), Some("3f1c2a9e-6a7b-4c1d-9e2f-0a1b2c3d4e5f"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = decoder();
        let _ = decoder.decode(&bytes, Position { source: "fuzz", offset: 0 });
        prop_assert!(decoder.finish().is_ok());
    }

    #[test]
    fn mutated_valid_events_never_panic(
        which in 0usize..6,
        cut in any::<proptest::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let types = ["application.submitted", "decision.made", "appeal.resolved", "staff.month_reported",
            "cost.booked", "appointment.booked"];
        let mut line = serde_json::to_vec(&valid(types[which])).expect("serialise");
        let at = cut.index(line.len());
        line[at] = byte;
        let mut decoder = decoder();
        let accepted = decoder.decode(&line, Position { source: "fuzz", offset: 0 }).is_ok();
        let batches = decoder.finish().expect("finish");
        let rows: usize = batches.iter().map(|b| b.batch.num_rows()).sum();
        prop_assert_eq!(rows, usize::from(accepted));
    }
}
