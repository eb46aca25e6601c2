//! Byte-for-byte golden check of everything the envelope parser and the classifier produce.
//!
//! The outputs are a contract (SPEC.md, docs/topics-and-records.md): topic, key, the exact
//! serialized bytes of every output, every field of it, and every rejection's reason and detail.
//! This test runs the curated inputs (docs/examples, the benchmark's inputs and
//! tests/golden/edge-cases.ndjson) and a generated corpus of mutations of them through
//! `parse_structured`, `decode_record` (binary mode) and the classifier under two
//! configurations, and compares the result with the files recorded in tests/golden:
//! `curated.txt` in full, `generated.txt` as one SHA-256 per group of mutations.
//!
//! The files were recorded with the code as it was before the performance work of issue 15;
//! a difference is a change of behaviour. To re-record after a deliberate, reviewed change of
//! the contract: `AUDITFLOW_BLESS=1 cargo test -p auditflow-core --test golden`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use auditflow_core::config::Limits;
use auditflow_core::envelope::parse_structured;
use auditflow_core::{Classified, Classifier, Config};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The lines of an NDJSON file, empty and odd ones included (they are inputs too).
fn lines_of(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines: Vec<Vec<u8>> = text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines
}

fn curated_inputs() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("../../docs/examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ndjson"))
        .collect();
    files.sort();
    files.push(root().join("benches/mix-others.ndjson"));
    files.push(root().join("tests/golden/edge-cases.ndjson"));
    let mut inputs = Vec::new();
    for file in files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for (n, line) in lines_of(&file).into_iter().enumerate() {
            inputs.push((format!("{name}:{}", n + 1), line));
        }
    }
    inputs
}

struct Setup {
    name: &'static str,
    classifier: Classifier,
}

fn setups() -> Vec<Setup> {
    let sampled = "[sampling]\n\"user.page.view\" = 0.5\n\"user.**\" = 0.5\n\"system.**\" = 0.25\n\"user.created\" = 0\n";
    let small = "[limits]\nmax_record_bytes = 200\nmax_json_depth = 4\n";
    [("default", ""), ("sampled", sampled), ("small", small)]
        .into_iter()
        .map(|(name, toml)| Setup {
            name,
            classifier: Classifier::new(&Config::from_toml_str(toml).unwrap()).unwrap(),
        })
        .collect()
}

fn fallbacks() -> [DateTime<Utc>; 2] {
    [
        Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
        Utc.timestamp_opt(1_800_000_000, 123_456_000).unwrap(),
    ]
}

fn describe(out: &mut String, label: &str, classified: &Classified) {
    match classified {
        Classified::Emit(outputs) => {
            writeln!(out, "{label}: emit {}", outputs.len()).unwrap();
            for output in outputs {
                writeln!(out, "  topic={} key={:?}", output.topic, output.key).unwrap();
                let event = String::from_utf8(output.value.clone()).unwrap();
                writeln!(out, "  event={event}").unwrap();
                // The bytes are an `Event`'s, serialized as `Event::to_json_bytes` does.
                assert_eq!(output.event().to_json_bytes(), output.value);
                // The CLI's line form wraps exactly these bytes.
                let line = String::from_utf8(output.to_line()).unwrap();
                let wrapped = format!(
                    "{{\"topic\":{},\"key\":{},\"value\":{event}}}",
                    Value::from(output.topic.as_str()),
                    Value::from(output.key.as_str())
                );
                assert_eq!(line, wrapped);
                writeln!(out, "  debug#={}", hash(&format!("{output:?}"))).unwrap();
            }
        }
        Classified::SampledOut { ty, .. } => writeln!(out, "{label}: sampled_out {ty:?}").unwrap(),
        Classified::Ignored => writeln!(out, "{label}: ignored").unwrap(),
        Classified::Rejected(r) => {
            writeln!(out, "{label}: rejected {} {:?}", r.reason, r.detail).unwrap()
        }
    }
}

/// Kafka headers, owned.
type Headers = Vec<(String, Vec<u8>)>;

/// Binary mode of a structured input: its string attributes as `ce_*` headers, `data` as the
/// value.
fn as_binary(bytes: &[u8]) -> Option<(Headers, Vec<u8>)> {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(bytes) else {
        return None;
    };
    let mut headers = vec![("ce_specversion".to_owned(), b"1.0".to_vec())];
    let mut value = Vec::new();
    for (name, v) in &object {
        match (name.as_str(), v) {
            ("data", data) => value = serde_json::to_vec(data).unwrap(),
            ("datacontenttype", Value::String(s)) => {
                headers.push(("Content-Type".to_owned(), s.clone().into_bytes()))
            }
            (_, Value::String(s)) => headers.push((format!("ce_{name}"), s.clone().into_bytes())),
            _ => {}
        }
    }
    Some((headers, value))
}

/// Everything the core makes of one input, as text.
fn run_case(bytes: &[u8], setups: &[Setup], full: bool) -> String {
    let mut out = String::new();
    for setup in setups {
        if !full && setup.name == "small" {
            continue;
        }
        match parse_structured(bytes, setup.classifier.limits()) {
            Ok(event) => {
                writeln!(
                    out,
                    "parse#[{}]: {}",
                    setup.name,
                    hash(&format!("{event:?}"))
                )
                .unwrap();
                let json = String::from_utf8(event.to_json_bytes()).unwrap();
                writeln!(out, "reserialized[{}]: {json}", setup.name).unwrap();
            }
            Err(r) => writeln!(out, "parse[{}]: {} {:?}", setup.name, r.reason, r.detail).unwrap(),
        }
        let fallbacks = fallbacks();
        let fallbacks = if full {
            &fallbacks[..]
        } else {
            &fallbacks[..1]
        };
        let mut first = String::new();
        for (n, fallback) in fallbacks.iter().enumerate() {
            let classified = setup.classifier.classify_structured(bytes, *fallback);
            let mut text = String::new();
            describe(&mut text, &format!("classify[{}]", setup.name), &classified);
            if n == 0 {
                first = text.clone();
            } else if text == first {
                // The fallback time did not matter.
                writeln!(out, "classify[{},{n}]: as with fallback 0", setup.name).unwrap();
                continue;
            }
            write!(out, "[{n}] {text}").unwrap();
        }
        if full && let Some((headers, value)) = as_binary(bytes) {
            let headers: Vec<(&str, &[u8])> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            let classified =
                setup
                    .classifier
                    .classify_record(headers.iter().copied(), &value, fallbacks[0]);
            describe(&mut out, &format!("binary[{}]", setup.name), &classified);
        }
    }
    out
}

const TOP_LEVEL: [&str; 18] = [
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "dataschema",
    "data",
    "data_base64",
    "metadata",
    "userid",
    "ipaddress",
    "useragent",
    "sessionid",
    "correlationid",
    "causationid",
    "traceparent",
];

const DATA_FIELDS: [&str; 25] = [
    "user_id",
    "success",
    "multiple_failures",
    "failure_count",
    "suspicious_location",
    "new_device",
    "geo",
    "changes",
    "new_role",
    "old_role",
    "permission",
    "changed_by",
    "data_type",
    "record_count",
    "sensitive",
    "purpose",
    "severity",
    "blocked",
    "outcome",
    "risk_level",
    "resource",
    "resource_id",
    "ip_address",
    "user_agent",
    "session_id",
];

fn values() -> Vec<Option<Value>> {
    [
        None,
        Some(Value::Null),
        Some(json!(true)),
        Some(json!(false)),
        Some(json!(0)),
        Some(json!(7)),
        Some(json!(-3)),
        Some(json!(2.5)),
        Some(json!("")),
        Some(json!("x")),
        Some(json!("admin")),
        Some(json!("critical")),
        Some(json!("partial")),
        Some(json!("::1")),
        Some(json!("user:zz")),
        Some(json!("2026-11-20T10:00:00.5Z")),
        Some(json!({"lat": 1, "lon": 2})),
        Some(json!({"email": 1, "b": null})),
        Some(json!(["a"])),
        Some(json!({})),
    ]
    .into()
}

/// Groups of generated inputs: mutations of the example and benchmark inputs.
fn generated_groups() -> Vec<(String, Vec<Vec<u8>>)> {
    let mut groups = Vec::new();
    let values = values();
    let bases = curated_inputs()
        .into_iter()
        .filter(|(name, _)| !name.starts_with("edge-cases"));
    for (name, bytes) in bases {
        let Ok(Value::Object(base)) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let set = |object: &Map<String, Value>, key: &str, value: &Option<Value>| {
            let mut object = object.clone();
            match value {
                None => object.remove(key),
                Some(v) => object.insert(key.to_owned(), v.clone()),
            };
            serde_json::to_vec(&Value::Object(object)).unwrap()
        };
        for key in TOP_LEVEL {
            let mut inputs: Vec<Vec<u8>> = values.iter().map(|v| set(&base, key, v)).collect();
            // Duplicate members, appended to the original text: the last one counts.
            let text = String::from_utf8_lossy(&bytes);
            if let Some(head) = text.trim_end().strip_suffix('}') {
                for v in values.iter().flatten() {
                    inputs.push(format!("{head},\"{key}\":{v}}}").into_bytes());
                    inputs.push(
                        format!("{{\"{key}\":{v},{}}}", &head.trim_start()[1..]).into_bytes(),
                    );
                }
            }
            groups.push((format!("{name} top.{key}"), inputs));
        }
        let data = match base.get("data") {
            Some(Value::Object(data)) => data.clone(),
            _ => Map::new(),
        };
        for field in DATA_FIELDS {
            let inputs = values
                .iter()
                .map(|v| {
                    let Value::Object(data) =
                        serde_json::from_slice(&set(&data, field, v)).unwrap()
                    else {
                        unreachable!()
                    };
                    let mut object = base.clone();
                    object.insert("data".into(), Value::Object(data));
                    serde_json::to_vec(&Value::Object(object)).unwrap()
                })
                .collect();
            groups.push((format!("{name} data.{field}"), inputs));
        }
    }
    groups
}

fn special_inputs() -> Vec<(String, Vec<u8>)> {
    let nested = |depth: usize| {
        let inner = format!("{}{}", "[".repeat(depth - 2), "]".repeat(depth - 2));
        format!(
            r#"{{"id":"e","source":"s","type":"user.x","subject":"user:u","data":{{"n":{inner}}}}}"#
        )
        .into_bytes()
    };
    let mut big =
        br#"{"id":"e","source":"s","type":"user.x","subject":"user:u","data":{"pad":""#.to_vec();
    big.resize(1024 * 1024 - 3, b'a');
    big.extend_from_slice(b"\"}}");
    let mut too_big = big.clone();
    too_big.insert(10, b' ');
    vec![
        ("nested-3".into(), nested(3)),
        ("nested-4".into(), nested(4)),
        ("nested-5".into(), nested(5)),
        ("nested-64".into(), nested(64)),
        ("nested-65".into(), nested(65)),
        ("deep-100000".into(), "[".repeat(100_000).into_bytes()),
        ("strings-with-brackets".into(), format!(r#"{{"id":"e","source":"s","type":"user.x","subject":"user:u","data":{{"s":"{}"}}}}"#, "[{".repeat(100)).into_bytes()),
        ("exactly-1MiB".into(), big),
        ("1MiB-and-1".into(), too_big),
        ("not-utf8".into(), b"\xff\xfe{}".to_vec()),
        ("bad-utf8-in-string".into(), b"{\"id\":\"\xc3\x28\"}".to_vec()),
        ("whitespace".into(), b"  \n\t ".to_vec()),
    ]
}

fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

fn compare_or_bless(file: &str, actual: &str) {
    let path = root().join("tests/golden").join(file);
    if std::env::var_os("AUDITFLOW_BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    if expected == actual {
        return;
    }
    let (mut exp, mut act) = (expected.lines(), actual.lines());
    let mut line = 0;
    loop {
        line += 1;
        match (exp.next(), act.next()) {
            (Some(e), Some(a)) if e == a => continue,
            (e, a) => panic!(
                "{file} differs at line {line}:\nexpected: {}\nactual:   {}",
                e.unwrap_or("<end>"),
                a.unwrap_or("<end>")
            ),
        }
    }
}

#[test]
fn curated_inputs_give_the_recorded_outputs() {
    let setups = setups();
    let mut text = String::new();
    let inputs = curated_inputs()
        .into_iter()
        .chain(special_inputs())
        .collect::<Vec<_>>();
    for (name, bytes) in inputs {
        writeln!(text, "### {name}").unwrap();
        if bytes.len() <= 4096 {
            writeln!(text, "input: {}", String::from_utf8_lossy(&bytes)).unwrap();
            text.push_str(&run_case(&bytes, &setups, true));
        } else {
            // Large inputs give large outputs: recorded by hash.
            writeln!(text, "input: {} bytes", bytes.len()).unwrap();
            writeln!(text, "hash: {}", hash(&run_case(&bytes, &setups, true))).unwrap();
        }
    }
    compare_or_bless("curated.txt", &text);
}

#[test]
fn generated_inputs_give_the_recorded_outputs() {
    let setups = setups();
    let mut text = String::new();
    for (name, inputs) in generated_groups() {
        let mut group = String::new();
        for bytes in &inputs {
            writeln!(group, "### {}", String::from_utf8_lossy(bytes)).unwrap();
            group.push_str(&run_case(bytes, &setups, false));
        }
        writeln!(text, "{name} {} {}", inputs.len(), hash(&group)).unwrap();
    }
    compare_or_bless("generated.txt", &text);
}

/// The limits the golden setups rely on are what they say.
#[test]
fn the_setups_have_the_limits_they_claim() {
    let setups = setups();
    let default = Limits::default();
    assert_eq!(
        setups[0].classifier.limits().max_record_bytes,
        default.max_record_bytes
    );
    assert_eq!(
        setups[0].classifier.limits().max_json_depth,
        default.max_json_depth
    );
    assert_eq!(setups[2].classifier.limits().max_json_depth, 4);
    assert_eq!(setups[2].classifier.limits().max_record_bytes, 200);
}
