//! The alerting rules (`deploy/prometheus/alerts.yml`), their unit tests (`alerts_test.yml`),
//! the Prometheus configuration and both Grafana dashboards, checked without a stack:
//!
//! - `promtool check rules` accepts the rules and `promtool test rules` passes their unit
//!   tests, which assert the exact set of alerts firing at each time; `promtool check config`
//!   accepts `prometheus.yml` with its `rule_files`, and `docker-compose.yml` mounts the rules
//!   where that file names them;
//! - every alert has a `severity` label, a `runbook_url` whose anchor is a heading of
//!   `docs/runbook.md`, and a unit test where it fires; every alert section of the runbook
//!   names an alert;
//! - every metric the rules and the dashboards query is one the metric tables of
//!   `docs/operations.md` and `docs/security-rules.md` document and a crate registers, and
//!   every label they match on or group by is one those tables name (or Prometheus's `job`,
//!   `instance`, `le`). A misspelt name is no error to Prometheus or Grafana: it selects
//!   nothing, so the alert would never fire and the panel stay empty, and nothing else would
//!   say so;
//! - every dashboard query parses as PromQL.
//!
//! `promtool` comes with Debian's `prometheus` package, which `.ci/run` installs when it is
//! missing. Without it these tests fail, never skip: a rule file nobody checked is how alerts
//! silently stop working. There is no YAML crate in the workspace, so the rule files are read
//! line by line, as they are written (one key per line, `expr` inline or as a `|` block);
//! promtool's count of rules checks that reading.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use auditflow_integration_tests::markdown::{heading, slug};

/// A path relative to the repository's root.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    let path = repo(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const RULES: &str = "deploy/prometheus/alerts.yml";
const RULE_TESTS: &str = "deploy/prometheus/alerts_test.yml";
const CONFIG: &str = "deploy/prometheus/prometheus.yml";
const RUNBOOK: &str = "docs/runbook.md";
const DASHBOARDS: [&str; 2] = [
    "deploy/grafana/dashboards/auditflow.json",
    "deploy/grafana/dashboards/auditflow-security.json",
];
/// The pages whose metric tables document every metric.
const METRIC_PAGES: [&str; 2] = ["docs/operations.md", "docs/security-rules.md"];
/// Labels Prometheus itself gives: the scrape target's, and a histogram bucket's bound.
const PROMETHEUS_LABELS: [&str; 3] = ["job", "instance", "le"];

/// Runs `promtool` with `args` and returns what it printed; fails the test, with that output,
/// unless it succeeds. Fails too when promtool is not installed.
fn promtool(args: &[&str]) -> String {
    let output = match Command::new("promtool").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "promtool is not on PATH: install Debian's `prometheus` package \
             (`apt-get install --no-install-recommends prometheus`; .ci/run installs it when \
             promtool is missing)"
        ),
        Err(e) => panic!("cannot run promtool: {e}"),
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "promtool {} failed ({}):\n{printed}",
        args.join(" "),
        output.status
    );
    printed
}

fn path_arg(path: &str) -> String {
    repo(path).display().to_string()
}

/// One rule of a rule file, as written.
#[derive(Debug, Default, PartialEq)]
struct Rule {
    /// `alert` or `record`.
    kind: &'static str,
    name: String,
    /// 1-based line of its `- alert:` or `- record:`.
    line: usize,
    expr: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A YAML scalar without its quotes.
fn unquote(value: &str) -> String {
    let value = value.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner.to_owned();
        }
    }
    value.to_owned()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The rules of a rule file written one key per line: `- alert:` or `- record:` starts a rule,
/// `expr:` is inline or a block scalar (`|`, `>`, …) of the more indented lines below it, and
/// the keys under `labels:` and `annotations:` are the lines indented below those.
fn rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text.lines().collect();
    let mut rules: Vec<Rule> = Vec::new();
    // Which map the keys below belong to, and the indentation of its key.
    let mut section: Option<(&str, usize)> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim();
        let at = indent(line);
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if section.is_some_and(|(_, key_indent)| at <= key_indent) {
            section = None;
        }
        let (kind, name) = match trimmed.strip_prefix("- ").and_then(|t| t.split_once(':')) {
            Some(("alert", name)) => ("alert", name),
            Some(("record", name)) => ("record", name),
            Some(("name", _)) => {
                // A group: no rule is open any more.
                section = None;
                rules.push(Rule::default());
                continue;
            }
            _ => ("", ""),
        };
        if !kind.is_empty() {
            rules.push(Rule {
                kind,
                name: unquote(name),
                line: i,
                ..Rule::default()
            });
            continue;
        }
        let Some(rule) = rules.last_mut().filter(|r| !r.kind.is_empty()) else {
            continue;
        };
        let Some((key, value)) = trimmed.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match (section, key) {
            (Some(("labels", _)), _) => {
                rule.labels.insert(key.to_owned(), unquote(value));
            }
            (Some(("annotations", _)), _) => {
                rule.annotations.insert(key.to_owned(), unquote(value));
            }
            (_, "labels" | "annotations") if value.starts_with('{') => {
                // A flow map, `{severity: warning}`.
                let map = if key == "labels" {
                    &mut rule.labels
                } else {
                    &mut rule.annotations
                };
                let inner = value.trim_start_matches('{').trim_end_matches('}');
                for (k, v) in inner.split(',').filter_map(|kv| kv.split_once(':')) {
                    map.insert(k.trim().to_owned(), unquote(v));
                }
            }
            (_, "labels") => section = Some(("labels", at)),
            (_, "annotations") => section = Some(("annotations", at)),
            (_, "expr") if value.starts_with('|') || value.starts_with('>') => {
                let mut block = Vec::new();
                while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > at) {
                    block.push(lines[i].trim());
                    i += 1;
                }
                rule.expr = block.join("\n").trim().to_owned();
            }
            (_, "expr") => rule.expr = unquote(value),
            _ => {}
        }
    }
    rules.retain(|r| !r.kind.is_empty());
    rules
}

fn alerts() -> Vec<Rule> {
    let alerts: Vec<Rule> = rules(&read(RULES))
        .into_iter()
        .filter(|r| r.kind == "alert")
        .collect();
    assert!(alerts.len() >= 10, "found the alerts ({})", alerts.len());
    alerts
}

/// The alerts a `promtool test rules` file expects to fire somewhere (an `alertname:` whose
/// `exp_alerts` is not empty), and every alert it names at all.
fn tested_alerts(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut firing, mut named) = (BTreeSet::new(), BTreeSet::new());
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let mut current = None;
    for (i, line) in lines.iter().enumerate() {
        let key = line.strip_prefix("- ").unwrap_or(line);
        if let Some(name) = key.strip_prefix("alertname:") {
            let name = unquote(name);
            named.insert(name.clone());
            current = Some(name);
        } else if let Some(rest) = key.strip_prefix("exp_alerts:") {
            let expects_some = rest.trim().is_empty()
                && lines.get(i + 1).is_some_and(|next| next.starts_with("- "));
            if let Some(name) = current.take().filter(|_| expects_some) {
                firing.insert(name);
            }
        }
    }
    (firing, named)
}

/// The headings of a markdown page outside fenced code blocks, without their `#`s.
fn headings(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut headings = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && let Some(heading) = heading(line) {
            headings.push(heading.trim().to_owned());
        }
    }
    headings
}

/// The metrics the metric tables of `METRIC_PAGES` document (the first cell of each row
/// naming an `auditflow_` metric), and every label those tables name: the operations table's
/// label column, and the `{…}` after a security metric's name.
fn documented() -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut metrics, mut labels) = (BTreeSet::new(), BTreeSet::new());
    for page in METRIC_PAGES {
        for line in read(page).lines() {
            let Some(row) = line.strip_prefix("| `auditflow_") else {
                continue;
            };
            let cells: Vec<&str> = row.split('|').collect();
            let first = format!("auditflow_{}", cells[0].trim().trim_end_matches('`'));
            let (name, braces) = match first.split_once('{') {
                Some((name, rest)) => (name.to_owned(), rest.trim_end_matches('}').to_owned()),
                None => (first.clone(), String::new()),
            };
            metrics.insert(name);
            labels.extend(
                braces
                    .split(',')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned),
            );
            if page == "docs/operations.md" {
                labels.extend(
                    cells[1]
                        .split('`')
                        .skip(1)
                        .step_by(2)
                        .map(|l| l.trim().to_owned()),
                );
            }
        }
    }
    assert!(
        metrics.len() >= 25 && labels.contains("service") && labels.contains("rule"),
        "found the metric tables: {metrics:?}, labels {labels:?}"
    );
    (metrics, labels)
}

/// `expr` with the contents of its string literals (`"…"`, `'…'`, `` `…` ``) removed, so that
/// a label value never reads as a metric or a label name.
fn without_strings(expr: &str) -> String {
    let mut out = String::new();
    let mut quote = None;
    let mut escaped = false;
    for c in expr.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(q) if c == '\\' && q != '`' => escaped = true,
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
            None => {
                if matches!(c, '"' | '\'' | '`') {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

fn is_identifier(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The `auditflow_` metric names an expression selects, histogram series suffixes kept.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let code = without_strings(expr);
    let mut names = BTreeSet::new();
    for (at, _) in code.match_indices("auditflow_") {
        if code[..at].chars().next_back().is_some_and(is_identifier) {
            continue;
        }
        let name: String = code[at..]
            .chars()
            .take_while(|c| is_identifier(*c))
            .collect();
        names.insert(name);
    }
    names
}

/// The labels an expression matches on (`{name="…"}`) or groups and joins by (`by`,
/// `without`, `on`, `ignoring`, `group_left`, `group_right`).
fn label_names(expr: &str) -> BTreeSet<String> {
    let code = without_strings(expr);
    let mut names = BTreeSet::new();
    let mut add = |list: &str| {
        for item in list.split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| is_identifier(*c))
                .collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    };
    let mut rest = code.as_str();
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e);
        add(&rest[start + 1..end]);
        rest = &rest[end.min(rest.len())..];
    }
    let chars: Vec<(usize, char)> = code.char_indices().collect();
    let mut i = 0;
    while i < chars.len() {
        if !is_identifier(chars[i].1) {
            i += 1;
            continue;
        }
        let start = chars[i].0;
        while i < chars.len() && is_identifier(chars[i].1) {
            i += 1;
        }
        let end = chars.get(i).map_or(code.len(), |(at, _)| *at);
        let word = &code[start..end];
        let after = code[end..].trim_start();
        if matches!(
            word,
            "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
        ) && let Some(list) = after.strip_prefix('(')
        {
            add(&list[..list.find(')').unwrap_or(list.len())]);
        }
    }
    names
}

/// Every `expr` string in a dashboard, with where it is.
fn dashboard_exprs(path: &str) -> Vec<(String, String)> {
    fn walk(value: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
        match value {
            serde_json::Value::Object(map) => {
                let title = map.get("title").and_then(|t| t.as_str());
                for (key, v) in map {
                    let here = match title {
                        Some(t) => format!("{at} / {t}"),
                        None => at.to_owned(),
                    };
                    match (key.as_str(), v.as_str()) {
                        ("expr", Some(expr)) => out.push((here, expr.to_owned())),
                        _ => walk(v, &here, out),
                    }
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, at, out);
                }
            }
            _ => {}
        }
    }
    let json: serde_json::Value =
        serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    walk(&json, path, &mut out);
    assert!(!out.is_empty(), "{path}: found no queries");
    out
}

/// Every query the rules and the dashboards make, with where it is.
fn every_query() -> Vec<(String, String)> {
    let mut queries: Vec<(String, String)> = rules(&read(RULES))
        .into_iter()
        .map(|r| (format!("{RULES}:{}: {}", r.line, r.name), r.expr))
        .collect();
    for dashboard in DASHBOARDS {
        queries.extend(dashboard_exprs(dashboard));
    }
    queries
}

/// Whether some crate's source spells `name` as a string literal (registers the metric).
fn registered_in_source(name: &str, sources: &[String]) -> bool {
    let literal = format!("\"{name}\"");
    sources.iter().any(|s| s.contains(&literal))
}

/// The text of every `.rs` file under `crates/*/src`.
fn crate_sources() -> Vec<String> {
    let mut sources = Vec::new();
    let mut stack = vec![repo("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && path.components().any(|c| c.as_os_str() == "src")
            {
                sources.push(std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    sources
}

#[test]
fn the_rules_pass_promtool_check_rules() {
    let printed = promtool(&["check", "rules", &path_arg(RULES)]);
    // promtool counts the rules: the line-based reading here must find as many.
    let found = printed
        .split(" rules found")
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no rule count in promtool's output:\n{printed}"));
    assert_eq!(
        rules(&read(RULES)).len(),
        found,
        "{RULES}: promtool found {found} rules, this test's reading another number"
    );
}

#[test]
fn the_rules_pass_their_unit_tests() {
    promtool(&["test", "rules", &path_arg(RULE_TESTS)]);
}

#[test]
fn the_prometheus_config_loads_the_rules() {
    // promtool resolves rule_files against the config's directory, as Prometheus does, and
    // checks the files it finds; scrape targets are not contacted.
    let printed = promtool(&["check", "config", &path_arg(CONFIG)]);
    assert!(printed.contains("1 rule files found"), "{printed}");
    let config = read(CONFIG);
    let names_rules = config
        .lines()
        .skip_while(|l| l.trim() != "rule_files:")
        .nth(1)
        .is_some_and(|l| l.trim() == "- alerts.yml");
    assert!(names_rules, "{CONFIG}: rule_files names alerts.yml");
    // docker-compose.yml mounts the rules beside the config, where rule_files finds them.
    let compose = read("docker-compose.yml");
    for mount in [
        "- ./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "- ./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro",
    ] {
        assert!(
            compose.lines().any(|l| l.trim() == mount),
            "docker-compose.yml: missing the volume {mount}"
        );
    }
}

#[test]
fn every_alert_has_a_severity_and_a_runbook_section() {
    let runbook = read(RUNBOOK);
    let headings = headings(&runbook);
    let anchors: BTreeSet<String> = headings.iter().map(|h| slug(h)).collect();
    let alerts = alerts();
    let mut problems = Vec::new();
    for alert in &alerts {
        let at = format!("{RULES}:{}: {}", alert.line, alert.name);
        match alert.labels.get("severity").map(String::as_str) {
            Some("critical" | "warning" | "info") => {}
            other => problems.push(format!("{at}: severity {other:?}")),
        }
        for annotation in ["summary", "description"] {
            if alert
                .annotations
                .get(annotation)
                .is_none_or(|a| a.is_empty())
            {
                problems.push(format!("{at}: no {annotation} annotation"));
            }
        }
        let url = alert.annotations.get("runbook_url").map(String::as_str);
        match url.and_then(|u| u.strip_prefix("docs/runbook.md#")) {
            Some(anchor) if anchor == slug(&alert.name) && anchors.contains(anchor) => {}
            Some(anchor) if anchors.contains(anchor) => problems.push(format!(
                "{at}: runbook_url #{anchor} is another alert's section (#{})",
                slug(&alert.name)
            )),
            Some(anchor) => problems.push(format!("{at}: {RUNBOOK} has no heading #{anchor}")),
            None => problems.push(format!(
                "{at}: runbook_url {url:?} is not docs/runbook.md#<anchor>"
            )),
        }
    }
    // And no section for an alert that does not exist (a renamed or removed one).
    let names: BTreeSet<&str> = alerts.iter().map(|a| a.name.as_str()).collect();
    for heading in &headings {
        if heading.starts_with("Auditflow") && !names.contains(heading.as_str()) {
            problems.push(format!("{RUNBOOK}: section {heading} names no alert"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_alert_has_a_unit_test_where_it_fires() {
    let (firing, named) = tested_alerts(&read(RULE_TESTS));
    let alerts: BTreeSet<String> = alerts().into_iter().map(|a| a.name).collect();
    let untested: Vec<_> = alerts.difference(&firing).collect();
    assert!(
        untested.is_empty(),
        "{RULE_TESTS}: no case where these fire: {untested:?}"
    );
    let unknown: Vec<_> = named.difference(&alerts).collect();
    assert!(
        unknown.is_empty(),
        "{RULE_TESTS}: tests of alerts {RULES} does not have: {unknown:?}"
    );
}

#[test]
fn rules_and_dashboards_use_only_documented_metrics_and_labels() {
    let (metrics, labels) = documented();
    let sources = crate_sources();
    let mut problems = Vec::new();
    let mut seen = 0;
    for (at, expr) in every_query() {
        for name in metric_names(&expr) {
            seen += 1;
            let base = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| metrics.contains(*base))
                })
                .unwrap_or(&name);
            if !metrics.contains(base) {
                problems.push(format!(
                    "{at}: {name} is not in the metric tables of {METRIC_PAGES:?}"
                ));
            } else if !registered_in_source(base, &sources) {
                problems.push(format!(
                    "{at}: {base} is documented, but no crate registers it"
                ));
            }
        }
        for label in label_names(&expr) {
            if !labels.contains(&label) && !PROMETHEUS_LABELS.contains(&label.as_str()) {
                problems.push(format!("{at}: label {label} is not in the metric tables"));
            }
        }
    }
    assert!(seen > 40, "found the queries' metrics ({seen})");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dashboard_queries_parse_as_promql() {
    // A rule file of one recording rule per query (JSON is YAML): promtool parses each.
    let queries: Vec<(String, String)> =
        DASHBOARDS.iter().flat_map(|d| dashboard_exprs(d)).collect();
    let rules: Vec<serde_json::Value> = queries
        .iter()
        .enumerate()
        .map(|(i, (_, expr))| serde_json::json!({"record": format!("dashboard_query_{i}"), "expr": expr}))
        .collect();
    let file = std::env::temp_dir().join(format!(
        "auditflow-dashboard-queries-{}.yml",
        std::process::id()
    ));
    let text = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]});
    std::fs::write(&file, text.to_string()).unwrap();
    let checked =
        std::panic::catch_unwind(|| promtool(&["check", "rules", &file.display().to_string()]));
    let _ = std::fs::remove_file(&file);
    if let Err(panic) = checked {
        let listing: Vec<String> = queries
            .iter()
            .enumerate()
            .map(|(i, (at, expr))| format!("dashboard_query_{i}: {at}: {expr}"))
            .collect();
        eprintln!("the queries:\n{}", listing.join("\n"));
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn the_dashboards_share_the_datasource_and_differ_in_uid_and_title() {
    let mut uids = BTreeSet::new();
    let mut titles = BTreeSet::new();
    for path in DASHBOARDS {
        let json: serde_json::Value = serde_json::from_str(&read(path)).unwrap();
        uids.insert(json["uid"].as_str().unwrap_or_default().to_owned());
        titles.insert(json["title"].as_str().unwrap_or_default().to_owned());
        let panels = json["panels"].as_array().expect("panels");
        for panel in panels {
            assert_eq!(
                panel["datasource"],
                serde_json::json!({"type": "prometheus", "uid": "${DS}"}),
                "{path}: panel {}",
                panel["title"]
            );
        }
    }
    assert_eq!(uids.len(), DASHBOARDS.len(), "uids {uids:?}");
    assert_eq!(titles.len(), DASHBOARDS.len(), "titles {titles:?}");
}

#[test]
fn the_readers_here_read_rules_and_queries_as_written() {
    let text = "\
groups:
  - name: g
    rules:
      # a comment
      - alert: A
        expr: up == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: \"a: {{ $labels.instance }}\"
          runbook_url: docs/runbook.md#a
      - alert: B
        expr: |
          sum by (service) (x)
          unless on (service) y
        labels: {severity: warning, team: 'x'}
  - name: h
    rules:
      - record: r
        expr: sum(z)
";
    let rules = rules(text);
    assert_eq!(rules.len(), 3, "{rules:#?}");
    assert_eq!(
        (
            rules[0].name.as_str(),
            rules[0].expr.as_str(),
            rules[0].line
        ),
        ("A", "up == 0", 5)
    );
    assert_eq!(rules[0].labels["severity"], "critical");
    assert_eq!(rules[0].annotations["summary"], "a: {{ $labels.instance }}");
    assert_eq!(rules[0].annotations["runbook_url"], "docs/runbook.md#a");
    assert_eq!(rules[1].expr, "sum by (service) (x)\nunless on (service) y");
    assert_eq!(rules[1].labels["severity"], "warning");
    assert_eq!(rules[1].labels["team"], "x");
    assert!(rules[1].annotations.is_empty());
    assert_eq!(
        (rules[2].kind, rules[2].expr.as_str()),
        ("record", "sum(z)")
    );

    let tests = "\
tests:
  - alert_rule_test:
      - alertname: A
        exp_alerts: []
      - alertname: B
        exp_alerts:
          # fires
          - exp_labels: {severity: warning}
";
    let (firing, named) = tested_alerts(tests);
    assert_eq!(firing, BTreeSet::from(["B".to_owned()]));
    assert_eq!(named, BTreeSet::from(["A".to_owned(), "B".to_owned()]));

    let expr = r#"histogram_quantile(0.99, sum by (le, service) (rate(auditflow_batch_write_seconds_bucket{service=~"auditflow_not_a_metric|sink"}[1m]))) unless on(service) auditflow_up_total offset 5m"#;
    assert_eq!(
        metric_names(expr),
        BTreeSet::from([
            "auditflow_batch_write_seconds_bucket".to_owned(),
            "auditflow_up_total".to_owned()
        ])
    );
    assert_eq!(
        label_names(expr),
        BTreeSet::from(["le".to_owned(), "service".to_owned()])
    );
    assert_eq!(
        label_names(
            r#"x{level="critical", rule!~"a,b"} and ignoring (instance) group_left(job) y"#
        ),
        BTreeSet::from(["instance", "job", "level", "rule"].map(str::to_owned))
    );
    assert_eq!(slug("AuditflowServiceDown"), "auditflowservicedown");
}
