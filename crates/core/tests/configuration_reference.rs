//! `docs/configuration.md` is the configuration reference, and this test keeps it true: every
//! key of [`Config`] has a row there, with the default the code has, its type and its
//! `AUDITFLOW_<SECTION>__<KEY>` variable, and the page names no key the code does not have.
//! Adding a key without documenting it, or changing a default without saying so, fails here.
//!
//! The keys and defaults come from the code itself: `Config::default()` serialized, section by
//! section. The page's rows are the table rows under a `## `[section]`` heading:
//! `| `key` | type | default | `AUDITFLOW_…` | meaning |`, the default written first as the
//! TOML literal (`"127.0.0.1:9092"`, `1000`, `["unknown", "system"]`, `{}`) or `unset`.

use std::collections::{BTreeMap, BTreeSet};

use auditflow_core::Config;
use serde_json::Value;

const PAGE: &str = include_str!("../../../docs/configuration.md");
const README: &str = include_str!("../../../README.md");

/// One documented key: its type, default and variable cells, and its meaning.
#[derive(Debug)]
struct Row {
    line: usize,
    ty: String,
    default: String,
    env: String,
    meaning: String,
}

/// `section → key → row` of the page, and the sections with a heading (some have no keys).
fn documented() -> (BTreeSet<String>, BTreeMap<String, BTreeMap<String, Row>>) {
    let mut sections = BTreeSet::new();
    let mut rows: BTreeMap<String, BTreeMap<String, Row>> = BTreeMap::new();
    let mut section: Option<String> = None;
    for (i, line) in PAGE.lines().enumerate() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = heading
                .trim()
                .strip_prefix("`[")
                .and_then(|rest| rest.strip_suffix("]`"))
                .map(str::to_owned);
            if let Some(name) = &section {
                assert!(
                    sections.insert(name.clone()),
                    "line {}: [{name}] twice",
                    i + 1
                );
            }
            continue;
        }
        let Some(name) = &section else { continue };
        if !line.starts_with("| `") {
            continue;
        }
        let cells = cells(line);
        assert_eq!(cells.len(), 5, "line {}: five cells, not {cells:?}", i + 1);
        let key = cells[0]
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .unwrap_or_else(|| panic!("line {}: the key cell is `key`", i + 1));
        let row = Row {
            line: i + 1,
            ty: cells[1].clone(),
            default: cells[2].clone(),
            env: cells[3].clone(),
            meaning: cells[4].clone(),
        };
        let previous = rows
            .entry(name.clone())
            .or_default()
            .insert(key.to_owned(), row);
        assert!(previous.is_none(), "line {}: [{name}] {key} twice", i + 1);
    }
    (sections, rows)
}

/// The cells of a table row; `\|` is a pipe inside a cell.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().unwrap().push('|');
            }
            '|' => cells.push(String::new()),
            c => cells.last_mut().unwrap().push(c),
        }
    }
    cells.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// A value as it is written in TOML (and in the page's default column), or `unset`.
fn toml_literal(value: &Value) -> String {
    match value {
        Value::Null => "unset".to_owned(),
        Value::Bool(_) | Value::Number(_) | Value::String(_) => value.to_string(),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(toml_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) if map.is_empty() => "{}".to_owned(),
        Value::Object(map) => {
            let bare = |k: &str| {
                k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            };
            let entries: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    let k = if bare(k) { k.clone() } else { format!("{k:?}") };
                    format!("{k} = {}", toml_literal(v))
                })
                .collect();
            format!("{{ {} }}", entries.join(", "))
        }
    }
}

/// The page's word for a value's type; `None` for an unset default (no value to tell by).
fn type_word(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Null => return None,
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(items) if items.iter().all(Value::is_string) => "list of strings",
        Value::Array(_) => "list",
        Value::Object(_) => "table",
    })
}

/// `section → key → default` of the code.
fn code() -> BTreeMap<String, serde_json::Map<String, Value>> {
    let Value::Object(sections) = serde_json::to_value(Config::default()).unwrap() else {
        panic!("a configuration serializes to a table");
    };
    sections
        .into_iter()
        .map(|(name, value)| match value {
            Value::Object(keys) => (name, keys),
            other => panic!("[{name}] is a table, not {other}"),
        })
        .collect()
}

#[test]
fn every_section_has_a_heading_and_no_heading_names_another() {
    let (sections, _) = documented();
    let code: BTreeSet<String> = code().into_keys().collect();
    assert_eq!(
        sections, code,
        "## `[section]` headings of docs/configuration.md"
    );
}

#[test]
fn every_key_is_documented_with_its_default_type_and_variable() {
    let (_, rows) = documented();
    let mut missing = Vec::new();
    for (section, keys) in code() {
        for (key, default) in keys {
            let Some(row) = rows.get(&section).and_then(|r| r.get(&key)) else {
                missing.push(format!("[{section}] {key}"));
                continue;
            };
            let at = format!("docs/configuration.md:{} [{section}] {key}", row.line);
            let literal = toml_literal(&default);
            let expected = if default.is_null() {
                literal
            } else {
                format!("`{literal}`")
            };
            assert!(
                row.default.starts_with(&expected),
                "{at}: the default cell must start with {expected}, not {:?}",
                row.default
            );
            if let Some(word) = type_word(&default) {
                assert!(
                    row.ty.starts_with(word),
                    "{at}: the type cell must start with {word:?}, not {:?}",
                    row.ty
                );
            }
            let variable = format!(
                "`AUDITFLOW_{}__{}`",
                section.to_ascii_uppercase(),
                key.to_ascii_uppercase()
            );
            assert!(
                row.env.starts_with(&variable),
                "{at}: the variable cell must start with {variable}, not {:?}",
                row.env
            );
            assert!(!row.meaning.is_empty(), "{at}: say what the key means");
        }
    }
    assert!(
        missing.is_empty(),
        "keys missing from docs/configuration.md: {missing:?}"
    );
}

#[test]
fn the_page_names_no_key_the_code_does_not_have() {
    let (_, rows) = documented();
    let code = code();
    for (section, keys) in rows {
        for (key, row) in keys {
            assert!(
                code.get(&section).is_some_and(|k| k.contains_key(&key)),
                "docs/configuration.md:{}: [{section}] {key} is no configuration key",
                row.line
            );
        }
    }
}

/// The ```toml blocks of a page.
fn toml_blocks(page: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in page.lines() {
        match (&mut current, line.trim()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn the_toml_examples_are_valid_configurations() {
    let blocks: Vec<(&str, String)> = [("docs/configuration.md", PAGE), ("README.md", README)]
        .into_iter()
        .flat_map(|(name, page)| toml_blocks(page).into_iter().map(move |b| (name, b)))
        .collect();
    assert!(blocks.len() >= 2, "the pages show examples");
    for (name, block) in blocks {
        if let Err(e) = Config::from_toml_str(&block) {
            panic!("{name}: an example is no valid configuration ({e}):\n{block}");
        }
    }
}

#[test]
fn literals_are_written_as_toml_writes_them() {
    let value = serde_json::json!({"a.b": "1", "class": "SimpleStrategy"});
    assert_eq!(
        toml_literal(&value),
        r#"{ "a.b" = "1", class = "SimpleStrategy" }"#
    );
    assert_eq!(
        toml_literal(&serde_json::json!(["^user\\..+"])),
        r#"["^user\\..+"]"#
    );
    assert_eq!(toml_literal(&serde_json::json!(50.0)), "50.0");
    assert_eq!(toml_literal(&Value::Null), "unset");
    assert_eq!(cells("| `a` | b \\| c | d |"), ["`a`", "b | c", "d"]);
}
