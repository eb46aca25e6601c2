//! Reading markdown as GitHub renders it, for the tests that check documentation against
//! the code (`tests/documentation.rs`, `tests/prometheus_rules.rs`).

/// GitHub's anchor of a heading: lowercased, spaces as `-`, punctuation dropped.
pub fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The text of a heading line (`## Title` → ` Title`, untrimmed), or `None` for any other line.
pub fn heading(line: &str) -> Option<&str> {
    line.strip_prefix('#')
        .map(|h| h.trim_start_matches('#'))
        .filter(|h| h.starts_with(' '))
}
