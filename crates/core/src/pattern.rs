//! Type patterns (docs/topics-and-records.md) and the one table that picks the most specific match.
//!
//! Sampling rates, classification rules and retention classes are all "pattern → value" lookups
//! over event types, and they must agree on what a pattern means and which of several matching
//! patterns wins. So there is exactly one matcher, [`PatternTable`], and everything that maps
//! types to values is built on it.
//!
//! A type is dot-separated segments of `[A-Za-z0-9_-]+`. In a pattern, `*` stands for exactly one
//! segment and `**` for zero or more. Specificity: more literal segments first, then fewer `**`,
//! then fewer `*`, then the order of declaration.

use std::fmt;
use std::str::FromStr;

use crate::error::ConfigError;

/// Whether `segment` is a valid literal type segment: `[A-Za-z0-9_-]+`.
pub fn is_valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `ty` is a well-formed event type: dot-separated valid segments.
pub fn is_valid_type(ty: &str) -> bool {
    ty.split('.').all(is_valid_segment)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `**`: zero or more segments.
    Any,
}

/// A parsed type pattern such as `user.**` or `system.*.failed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    segments: Vec<Segment>,
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong with it (the caller names the key).
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::InvalidPattern {
            pattern: text.to_owned(),
            reason,
        };
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let segments = text
            .split('.')
            .enumerate()
            .map(|(i, segment)| match segment {
                "*" => Ok(Segment::One),
                "**" => Ok(Segment::Any),
                s if is_valid_segment(s) => Ok(Segment::Literal(s.to_owned())),
                "" => Err(invalid(format!("segment {} is empty", i + 1))),
                s => Err(invalid(format!(
                    "segment {} `{s}` is neither `*`, `**` nor made of [A-Za-z0-9_-]",
                    i + 1
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern matches the event type `ty`.
    pub fn matches(&self, ty: &str) -> bool {
        let segments: Vec<&str> = ty.split('.').collect();
        self.matches_segments(&segments)
    }

    /// Glob matching over segments: `*` is "any one", `**` is "any run". The classic greedy
    /// algorithm that backtracks only to the last `**` is exact for this alphabet and linear
    /// in practice (worst case `patterns × type` segments), with no recursion to blow the stack.
    fn matches_segments(&self, ty: &[&str]) -> bool {
        let pat = &self.segments;
        let (mut p, mut t) = (0, 0);
        // Position after the last `**` seen, and the type position it was tried against.
        let mut backtrack: Option<(usize, usize)> = None;
        while t < ty.len() {
            match pat.get(p) {
                Some(Segment::Any) => {
                    backtrack = Some((p + 1, t));
                    p += 1;
                }
                Some(Segment::One) => {
                    p += 1;
                    t += 1;
                }
                Some(Segment::Literal(lit)) if lit == ty[t] => {
                    p += 1;
                    t += 1;
                }
                _ => match backtrack {
                    // Let the last `**` swallow one more segment and retry from there.
                    Some((bp, bt)) => {
                        backtrack = Some((bp, bt + 1));
                        p = bp;
                        t = bt + 1;
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|s| *s == Segment::Any)
    }

    /// Sort key: smaller is more specific. Declaration order breaks ties (a stable sort).
    fn specificity(&self) -> (std::cmp::Reverse<usize>, usize, usize) {
        let count = |f: fn(&Segment) -> bool| self.segments.iter().filter(|s| f(s)).count();
        (
            std::cmp::Reverse(count(|s| matches!(s, Segment::Literal(_)))),
            count(|s| *s == Segment::Any),
            count(|s| *s == Segment::One),
        )
    }
}

impl FromStr for Pattern {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Patterns with values, looked up by event type; the most specific matching pattern wins.
#[derive(Debug, Clone)]
pub struct PatternTable<T> {
    /// Most specific first, so a lookup is the first match.
    entries: Vec<(Pattern, T)>,
}

impl<T> Default for PatternTable<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<T> PatternTable<T> {
    /// Builds a table; `entries` are in declaration order, which breaks specificity ties.
    pub fn new(entries: impl IntoIterator<Item = (Pattern, T)>) -> Self {
        let mut entries: Vec<_> = entries.into_iter().collect();
        entries.sort_by_key(|(pattern, _)| pattern.specificity());
        Self { entries }
    }

    /// Parses each pattern and builds the table.
    pub fn parse<'a>(entries: impl IntoIterator<Item = (&'a str, T)>) -> Result<Self, ConfigError> {
        let entries = entries
            .into_iter()
            .map(|(text, value)| Ok((Pattern::parse(text)?, value)))
            .collect::<Result<Vec<_>, ConfigError>>()?;
        Ok(Self::new(entries))
    }

    /// The value of the most specific pattern matching `ty`, with that pattern.
    pub fn lookup(&self, ty: &str) -> Option<(&Pattern, &T)> {
        let segments: Vec<&str> = ty.split('.').collect();
        self.lookup_segments(&segments)
    }

    /// As [`lookup`](Self::lookup), for a type already split on `.` (split once, look up many).
    pub fn lookup_segments(&self, segments: &[&str]) -> Option<(&Pattern, &T)> {
        self.entries
            .iter()
            .find(|(pattern, _)| pattern.matches_segments(segments))
            .map(|(pattern, value)| (pattern, value))
    }

    /// The value for `ty`, if any pattern matches.
    pub fn get(&self, ty: &str) -> Option<&T> {
        self.lookup(ty).map(|(_, value)| value)
    }

    /// Whether the table holds no pattern (then no type matches).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn matches(pattern: &str, ty: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(ty)
    }

    #[test]
    fn double_star_matches_zero_or_more_segments() {
        assert!(matches("audit.**", "audit"));
        assert!(matches("audit.**", "audit.user"));
        assert!(matches("audit.**", "audit.user.action"));
        assert!(!matches("audit.**", "auditx"));
        assert!(!matches("audit.**", "user.audit"));
        assert!(matches("a.**.e", "a.e"));
        assert!(matches("a.**.e", "a.b.c.d.e"));
        assert!(!matches("a.**.e", "a.e.f"));
        assert!(matches("**.e", "e"));
        assert!(matches("a.**.c.**.e", "a.b.c.d.e"));
        assert!(matches("a.**.c.**.e", "a.c.e"));
        assert!(!matches("a.**.c.**.e", "a.b.d.e"));
    }

    #[test]
    fn single_star_matches_exactly_one_segment() {
        assert!(matches("user.*", "user.created"));
        assert!(!matches("user.*", "user"));
        assert!(!matches("user.*", "user.login.attempt"));
        assert!(matches("user.*.attempt", "user.login.attempt"));
        assert!(matches("*.**", "user"));
        assert!(!matches("*.*", "user"));
    }

    #[test]
    fn literals_are_case_sensitive_and_whole_segments() {
        assert!(!matches("user.created", "User.created"));
        assert!(!matches("user.create", "user.created"));
    }

    #[test]
    fn invalid_patterns_are_rejected_with_a_reason() {
        for bad in ["", "a..b", "a.", ".a", "a.b*", "a.***", "a b", "user.é"] {
            let err = Pattern::parse(bad).unwrap_err();
            assert!(
                matches!(err, ConfigError::InvalidPattern { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn more_literal_segments_win() {
        let table = PatternTable::parse([
            ("user.**", 1),
            ("user.login.*", 2),
            ("user.login.attempt", 3),
        ])
        .unwrap();
        assert_eq!(table.get("user.login.attempt"), Some(&3));
        assert_eq!(table.get("user.login.other"), Some(&2));
        assert_eq!(table.get("user.created"), Some(&1));
        assert_eq!(table.get("system.x"), None);
    }

    #[test]
    fn fewer_double_stars_then_fewer_stars_win() {
        // One literal each: `**` loses to `*`-only patterns.
        let table = PatternTable::parse([("user.**", "any"), ("user.*", "one")]).unwrap();
        assert_eq!(table.get("user.created"), Some(&"one"));
        // Same literals and `**` count: fewer `*` wins.
        let table = PatternTable::parse([("a.*.*.**", "two"), ("a.*.**", "one")]).unwrap();
        assert_eq!(table.get("a.b.c"), Some(&"one"));
        // Same literals: fewer `**` wins even with more `*`.
        let table = PatternTable::parse([("a.**.**", "dd"), ("a.*.*", "ss")]).unwrap();
        assert_eq!(table.get("a.b.c"), Some(&"ss"));
    }

    #[test]
    fn full_ties_go_to_the_first_declared() {
        let first = PatternTable::parse([("user.*.view", 1), ("user.page.*", 2)]).unwrap();
        assert_eq!(first.get("user.page.view"), Some(&1));
        let second = PatternTable::parse([("user.page.*", 2), ("user.*.view", 1)]).unwrap();
        assert_eq!(second.get("user.page.view"), Some(&2));
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{1,4}"
    }

    fn event_type() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..6).prop_map(|s| s.join("."))
    }

    proptest! {
        #[test]
        fn double_star_alone_matches_every_type(ty in event_type()) {
            prop_assert!(matches("**", &ty));
        }

        #[test]
        fn prefix_double_star_matches_the_prefix_itself(ty in event_type()) {
            let pattern = format!("{ty}.**");
            prop_assert!(matches(&pattern, &ty));
        }

        #[test]
        fn a_wildcard_free_pattern_matches_only_itself(p in event_type(), ty in event_type()) {
            prop_assert_eq!(matches(&p, &ty), p == ty);
            prop_assert!(matches(&p, &p));
        }

        #[test]
        fn star_never_matches_two_segments(a in segment(), b in segment(), prefix in event_type()) {
            let ty = format!("{prefix}.{a}.{b}");
            let one = format!("{prefix}.*");
            let two = format!("{prefix}.*.*");
            prop_assert!(!matches(&one, &ty));
            prop_assert!(matches(&two, &ty));
        }

        #[test]
        fn greedy_matcher_agrees_with_a_recursive_reference(
            pat in prop::collection::vec(prop_oneof!["a", "b", Just("*".to_string()), Just("**".to_string())], 1..6),
            ty in prop::collection::vec(prop_oneof!["a", "b"], 1..7),
        ) {
            fn reference(p: &[&str], t: &[&str]) -> bool {
                match p.split_first() {
                    None => t.is_empty(),
                    Some((&"**", rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..])),
                    Some((&"*", rest)) => !t.is_empty() && reference(rest, &t[1..]),
                    Some((lit, rest)) => t.first() == Some(lit) && reference(rest, &t[1..]),
                }
            }
            let p: Vec<&str> = pat.iter().map(String::as_str).collect();
            let t: Vec<&str> = ty.iter().map(String::as_str).collect();
            prop_assert_eq!(matches(&pat.join("."), &ty.join(".")), reference(&p, &t));
        }
    }
}
