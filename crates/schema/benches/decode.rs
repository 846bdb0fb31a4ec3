//! JSON → Arrow decode rate (events/s and bytes/s) on a generated workload.
//!
//! `cargo bench -p permitflow-schema --bench decode`; `decode/json_syntax_only` is the reference: the
//! rate of only checking the same lines' JSON syntax.
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use permitflow_gen::{GenConfig, generate_year};
use permitflow_schema::{Contract, Decoder, Position, Pseudonymiser};
use serde::de::IgnoredAny;

/// Share of a `--scale 1` year decoded per iteration (about 40,000 events).
const BENCH_SCALE: f64 = 0.1;

fn decode(c: &mut Criterion) {
    let config = GenConfig { scale: BENCH_SCALE, ..GenConfig::default() };
    let mut input = Vec::new();
    generate_year(&config, config.start_year, &mut input).expect("generate workload");
    let lines: Vec<&[u8]> = input.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let contract = Contract::embedded().expect("contract");

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(lines.len() as u64));
    // One decoder for all iterations, finished after each, as ingest uses it for a stream of batches.
    let mut decoder = Decoder::new(contract, Pseudonymiser::development());
    group.bench_function("events", |b| {
        b.iter(|| {
            for (i, line) in lines.iter().enumerate() {
                let _ = decoder.decode(line, Position { source: "file:bench", offset: i as i64 });
            }
            decoder.finish().expect("finish")
        })
    });
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            for (i, line) in lines.iter().enumerate() {
                let _ = decoder.decode(line, Position { source: "file:bench", offset: i as i64 });
            }
            decoder.finish().expect("finish")
        })
    });
    // Reference on the same lines: checking the JSON syntax alone, with serde_json. The machine's speed
    // varies from run to run; the ratio of the decode rate to this one does much less.
    group.throughput(Throughput::Elements(lines.len() as u64));
    group.bench_function("json_syntax_only", |b| {
        b.iter(|| lines.iter().filter(|line| serde_json::from_slice::<IgnoredAny>(line).is_ok()).count())
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
