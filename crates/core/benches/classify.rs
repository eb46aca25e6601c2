//! Classification throughput against a floor measured in the same run: plain serde_json
//! (parse to `Value`, serialize back) over the same bytes. The classifier must parse, check,
//! classify and serialize, so the ratio says what the audit logic costs on top of JSON itself.
//!
//! `cargo bench -p auditflow-core --bench classify -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use auditflow_core::envelope::{Event, parse_structured};
use auditflow_core::{Classified, Classifier, Config};
use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_main};

/// The recipe's seven-event user lifecycle (`docs/examples/recipe-lifecycle.ndjson`).
const LIFECYCLE: &str = include_str!("../../../docs/examples/recipe-lifecycle.ndjson");

/// Traffic of other shapes: system events, sampled page views, a rejected record.
const OTHERS: &str = include_str!("mix-others.ndjson");

fn lines(text: &str) -> Vec<&[u8]> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(str::as_bytes)
        .collect()
}

fn bench(c: &mut Criterion) {
    let config = Config::from_toml_str("[sampling]\n\"user.page.view\" = 0.5\n").unwrap();
    let classifier = Classifier::new(&config).unwrap();
    let limits = config.limits.clone();
    let fallback = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
    let lifecycle = lines(LIFECYCLE);
    let mix: Vec<&[u8]> = lines(LIFECYCLE).into_iter().chain(lines(OTHERS)).collect();

    for (name, events) in [("lifecycle", &lifecycle), ("mix", &mix)] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_function("serde_json_parse_serialize", |b| {
            b.iter(|| {
                for line in events.iter() {
                    let value: serde_json::Value = serde_json::from_slice(black_box(line)).unwrap();
                    black_box(serde_json::to_vec(&value).unwrap());
                }
            })
        });
        group.bench_function("classify_and_serialize", |b| {
            b.iter(|| {
                for line in events.iter() {
                    if let Classified::Emit(outputs) =
                        classifier.classify_structured(black_box(line), fallback)
                    {
                        // What the classifier service does with each output
                        // (auditflow_runtime's `event_record`).
                        for output in &outputs {
                            black_box(&output.value);
                        }
                    }
                }
            })
        });
        // The CLI's line form (`{"topic", "key", "value"}` through serde), for comparison.
        group.bench_function("classify_and_serialize_line_form", |b| {
            b.iter(|| {
                for line in events.iter() {
                    if let Classified::Emit(outputs) =
                        classifier.classify_structured(black_box(line), fallback)
                    {
                        for output in &outputs {
                            black_box(output.to_line());
                        }
                    }
                }
            })
        });
        // Where the time goes: parsing alone, and classifying already parsed events.
        group.bench_function("envelope_parse_only", |b| {
            b.iter(|| {
                for line in events.iter() {
                    black_box(parse_structured(black_box(line), &limits).ok());
                }
            })
        });
        let parsed: Vec<Event> = events
            .iter()
            .filter_map(|line| parse_structured(line, &limits).ok())
            .collect();
        group.bench_function("classify_parsed_only", |b| {
            b.iter(|| {
                for event in &parsed {
                    black_box(classifier.classify(black_box(event), fallback));
                }
            })
        });
        group.finish();
    }
}

// criterion_group! defines a public, undocumented `benches` function; in a private module it
// is no API of this benchmark binary, so missing_docs has nothing to ask of it.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
