//! The loops of `benches/classify.rs`, one at a time and a fixed number of times, for counting
//! instructions under callgrind (the steady figure on a noisy machine):
//!
//! ```sh
//! cargo build --profile bench -p auditflow-core --example classify_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/classify_instructions classify lifecycle 2000
//! ```
//!
//! Run it twice, with N and 0 iterations; (Ir(N) − Ir(0)) / (N × events) is instructions per
//! event. Modes: `baseline` (serde_json parse + serialize), `parse` (envelope parse only),
//! `classify` (parse + classify + serialize every output, what the service does).

use std::hint::black_box;

use auditflow_core::envelope::parse_structured;
use auditflow_core::{Classified, Classifier, Config};
use chrono::{TimeZone, Utc};

const LIFECYCLE: &str = include_str!("../../../docs/examples/recipe-lifecycle.ndjson");
const OTHERS: &str = include_str!("../benches/mix-others.ndjson");

fn lines(text: &str) -> Vec<&[u8]> {
    text.lines()
        .filter(|line| !line.is_empty())
        .map(str::as_bytes)
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, input, iterations) = match args.as_slice() {
        [_, mode, input, n] => (mode.as_str(), input.as_str(), n.parse::<usize>().unwrap()),
        _ => panic!("usage: classify_instructions baseline|parse|classify lifecycle|mix N"),
    };
    let config = Config::from_toml_str("[sampling]\n\"user.page.view\" = 0.5\n").unwrap();
    let classifier = Classifier::new(&config).unwrap();
    let limits = config.limits.clone();
    let fallback = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
    let events: Vec<&[u8]> = match input {
        "lifecycle" => lines(LIFECYCLE),
        "mix" => lines(LIFECYCLE).into_iter().chain(lines(OTHERS)).collect(),
        other => panic!("unknown input {other}"),
    };
    // `AUDITFLOW_LINE_FORM=1`: serialize each output as the CLI's line form (serde, topic, key
    // and event) rather than as the service does (`Event::to_json_bytes`).
    let line_form = std::env::var_os("AUDITFLOW_LINE_FORM").is_some();
    for _ in 0..iterations {
        for line in &events {
            match mode {
                "baseline" => {
                    let value: serde_json::Value = serde_json::from_slice(black_box(line)).unwrap();
                    black_box(serde_json::to_vec(&value).unwrap());
                }
                "parse" => {
                    black_box(parse_structured(black_box(line), &limits).ok());
                }
                "classify" => {
                    if let Classified::Emit(outputs) =
                        classifier.classify_structured(black_box(line), fallback)
                    {
                        for output in &outputs {
                            if line_form {
                                black_box(output.to_line());
                            } else {
                                black_box(&output.value);
                            }
                        }
                    }
                }
                other => panic!("unknown mode {other}"),
            }
        }
    }
}
