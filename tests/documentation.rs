//! The repository documents itself, and these tests keep the documents true to the code (no
//! stack needed):
//!
//! - `docs/reason-codes.md` has a section for every dead-letter reason code the services and
//!   commands can emit, and none for a code they cannot; its header table names every
//!   `auditflow.*` header a dead letter can carry.
//!
//! - Every relative link in README.md, ARCHITECTURE.md, BENCHMARKS.md and `docs/` resolves to a
//!   file inside the repository, and every `#anchor` to a heading of the page it names.
//! - No source file, test or benchmark reads data from outside the repository (a user's clone
//!   has nothing beside it): the recipe's lifecycle is `docs/examples/recipe-lifecycle.ndjson`.
//!
//! The codes come from the code itself: the core's [`Reason`] enum, plus every code a
//! `DeadLetter::new(...)` call in a crate's source spells as a literal or a constant. A new
//! code written anywhere fails here until it is documented.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use auditflow_core::Reason;
use auditflow_integration_tests::markdown::{heading, slug};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir` whose name ends in `.<extension>`, recursively, sorted.
fn files_under(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == extension) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every `.rs` file under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    files_under(dir, "rs")
}

/// The non-test source of every crate: `crates/*/src/**.rs`, each cut at its test module
/// (`#[cfg(test)]`, which this repository puts at the end of a file).
fn crate_sources() -> Vec<(PathBuf, String)> {
    let crates = root().join("crates");
    let mut sources = Vec::new();
    for entry in std::fs::read_dir(&crates).unwrap() {
        let src = entry.unwrap().path().join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rust_files(&src) {
            let text = read(&file);
            let code = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            sources.push((file, code));
        }
    }
    assert!(sources.len() > 50, "found the crates' sources");
    sources
}

/// The value of `const NAME: &str = "...";` in any of `sources`.
fn string_constant(sources: &[(PathBuf, String)], name: &str) -> Option<String> {
    let needle = format!("const {name}: &str = \"");
    sources.iter().find_map(|(_, code)| {
        let start = code.find(&needle)? + needle.len();
        let len = code[start..].find('"')?;
        Some(code[start..start + len].to_owned())
    })
}

/// The text of a call's first argument, given what follows its `(`: up to the first `,` or
/// `)` outside parentheses and string literals.
fn first_argument(rest: &str) -> &str {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if in_string => {}
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            ',' | ')' => return rest[..i].trim(),
            _ => {}
        }
    }
    rest.trim()
}

/// Every reason code the code can put in `auditflow.error`.
fn emitted_reason_codes() -> BTreeSet<String> {
    let mut codes: BTreeSet<String> = Reason::ALL.iter().map(|r| r.as_str().to_owned()).collect();
    let sources = crate_sources();
    for (file, code) in &sources {
        for (at, _) in code.match_indices("DeadLetter::new(") {
            let argument = first_argument(&code[at + "DeadLetter::new(".len()..]);
            let line = code[..at].lines().count() + 1;
            let site = format!("{}:{line}", file.display());
            if let Some(literal) = argument.strip_prefix('"') {
                codes.insert(literal.trim_end_matches('"').to_owned());
            } else if argument.ends_with("reason.as_str()") || argument.starts_with("Reason::") {
                // A core `Reason`: already in `Reason::ALL`.
            } else if argument
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b == b'_')
            {
                let value = string_constant(&sources, argument)
                    .unwrap_or_else(|| panic!("{site}: no `const {argument}: &str`"));
                codes.insert(value);
            } else {
                panic!(
                    "{site}: cannot tell the reason code of `DeadLetter::new({argument}, …)`: \
                     pass a literal, a `const`, or a core `Reason`"
                );
            }
        }
    }
    codes
}

/// The codes `docs/reason-codes.md` documents: its `### `code`` headings.
fn documented_reason_codes(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|line| line.strip_prefix("### `")?.strip_suffix('`'))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_reason_code_is_documented_and_no_other() {
    let page = read(&root().join("docs/reason-codes.md"));
    let documented = documented_reason_codes(&page);
    let emitted = emitted_reason_codes();
    let undocumented: Vec<_> = emitted.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        undocumented.is_empty(),
        "reason codes with no section in docs/reason-codes.md: {undocumented:?}"
    );
    assert!(
        stale.is_empty(),
        "docs/reason-codes.md documents codes nothing emits: {stale:?}"
    );
}

#[test]
fn every_dead_letter_header_is_documented() {
    let page = read(&root().join("docs/reason-codes.md"));
    let mut headers = Vec::new();
    for (file, code) in crate_sources() {
        for line in code.lines() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("pub const HEADER_")
                && let Some((_, value)) = rest.split_once(": &str = \"")
                && let Some(name) = value.strip_suffix("\";")
                && name.starts_with("auditflow.")
            {
                headers.push((file.clone(), name.to_owned()));
            }
        }
    }
    assert!(
        headers.len() >= 6,
        "found the dead-letter headers: {headers:?}"
    );
    for (file, name) in headers {
        assert!(
            page.contains(&format!("| `{name}` |")),
            "{}: header {name} has no row in docs/reason-codes.md",
            file.display()
        );
    }
}

#[test]
fn tests_and_benchmarks_read_their_data_from_inside_the_repository() {
    let root = root();
    let mut outside = Vec::new();
    for dir in ["crates", "tests", "xtask", "fuzz"] {
        let dir = root.join(dir);
        if !dir.is_dir() {
            continue;
        }
        for file in rust_files(&dir) {
            if file.components().any(|c| c.as_os_str() == "target") {
                continue;
            }
            let text = read(&file);
            // A user's clone has no shared folder beside it. (Spelled in two halves so that
            // this file does not find itself.)
            let needles = [concat!("../", "shared/"), concat!("shared/", "examples/")];
            for (n, line) in text.lines().enumerate() {
                if needles.iter().any(|needle| line.contains(needle)) {
                    outside.push(format!("{}:{}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(
        outside.is_empty(),
        "paths outside the repository: {outside:?}"
    );
    assert!(root.join("docs/examples/recipe-lifecycle.ndjson").is_file());
}

/// The project's markdown pages: the three at the root and everything under `docs/`.
fn markdown_pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .iter()
        .map(|p| root.join(p))
        .collect();
    pages.extend(files_under(&root.join("docs"), "md"));
    pages
}

/// The lines of a page outside fenced code blocks, with their 1-based numbers.
fn prose_lines(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            lines.push((i + 1, line));
        }
    }
    lines
}

/// A line without its inline code spans (`` `x` ``, ``` ``x`` ```), which hold no links.
fn without_code(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        out.push_str(&rest[..start]);
        let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
        let fence = "`".repeat(ticks);
        let after = &rest[start + ticks..];
        match after.find(&fence) {
            Some(end) => rest = &after[end + ticks..],
            None => {
                rest = after;
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The targets of the inline links `[text](target)` on a page, with their line numbers.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut targets = Vec::new();
    for (n, line) in prose_lines(text) {
        let line = without_code(line);
        for (at, _) in line.match_indices("](") {
            let rest = &line[at + 2..];
            if let Some(end) = rest.find(')') {
                targets.push((n, rest[..end].trim().to_owned()));
            }
        }
    }
    targets
}

/// Every anchor a page's headings give, with GitHub's `-1`, `-2` suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (_, line) in prose_lines(text) {
        let Some(heading) = heading(line) else {
            continue;
        };
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

#[test]
fn every_link_resolves_inside_the_repository() {
    let root = std::fs::canonicalize(root()).unwrap();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in markdown_pages() {
        let text = read(&page);
        let name = page
            .strip_prefix(&root)
            .unwrap_or(&page)
            .display()
            .to_string();
        for (line, target) in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                page.parent().unwrap().join(path)
            };
            let Ok(file) = std::fs::canonicalize(&file) else {
                broken.push(format!("{name}:{line}: {target}: no such file"));
                continue;
            };
            if !file.starts_with(&root) {
                broken.push(format!("{name}:{line}: {target}: outside the repository"));
                continue;
            }
            if let Some(anchor) = anchor {
                let is_page = file.extension().is_some_and(|e| e == "md");
                if !is_page || !anchors(&read(&file)).contains(anchor) {
                    broken.push(format!("{name}:{line}: {target}: no heading #{anchor}"));
                }
            }
        }
    }
    assert!(checked > 20, "found the links ({checked})");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn anchors_and_links_are_read_as_github_renders_them() {
    assert_eq!(slug("`[kafka]`"), "kafka");
    assert_eq!(slug("`audit.user.action`"), "audituseraction");
    assert_eq!(slug("Erasure (GDPR)"), "erasure-gdpr");
    assert_eq!(
        slug("`auditflow gdpr anonymize`"),
        "auditflow-gdpr-anonymize"
    );
    assert_eq!(
        anchors("# A\n## B\n```\n## not a heading\n```\n## B\n"),
        BTreeSet::from(["a".to_owned(), "b".to_owned(), "b-1".to_owned()])
    );
    assert_eq!(
        link_targets("see [a](x.md#y), `[b](not)`, ``[c](`no`)``\n```\n[d](no)\n```\n"),
        [(1, "x.md#y".to_owned())]
    );
}
