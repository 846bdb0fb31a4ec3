//! JSON → Arrow decode rate (events/s and bytes/s) on a generated workload.
//!
//! `cargo bench -p permitflow-schema --bench decode`
#![allow(missing_docs)] // criterion_group! generates an undocumented function.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use permitflow_gen::{GenConfig, generate_year};
use permitflow_schema::{Contract, Decoder, Position, Pseudonymiser};

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
    group.bench_function("events", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(contract.clone(), Pseudonymiser::development());
            for (i, line) in lines.iter().enumerate() {
                let _ = decoder.decode(line, Position { source: "file:bench", offset: i as i64 });
            }
            decoder.finish().expect("finish")
        })
    });
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function("bytes", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new(contract.clone(), Pseudonymiser::development());
            for (i, line) in lines.iter().enumerate() {
                let _ = decoder.decode(line, Position { source: "file:bench", offset: i as i64 });
            }
            decoder.finish().expect("finish")
        })
    });
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
