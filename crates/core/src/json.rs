//! A compact JSON writer into bytes, for the hot output paths: the classifier's outputs
//! ([`Output`]) and [`Event::to_json_bytes`], both written member by member through [`Object`].
//!
//! It writes exactly what `serde_json::to_vec` writes for the same value (compact formatting,
//! map keys in the map's order, numbers by serde_json itself), so the bytes are the same;
//! `tests` below and tests/golden.rs hold it to that. What it saves over the generic serde path:
//! strings that need no escaping (nearly all of them) are checked eight bytes at a time and
//! copied in one piece, and the buffer is sized once.
//!
//! [`Event::to_json_bytes`]: crate::envelope::Event::to_json_bytes
//! [`Output`]: crate::classify::Output

use serde_json::{Map, Value};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is zero (exact as a yes/no answer).
fn has_zero_byte(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// Whether `bytes` hold a byte serde_json escapes: a control character (below 0x20), `"` or
/// `\`. Bytes of 0x80 and above (UTF-8 beyond ASCII) are written as they are.
pub(crate) fn needs_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // A byte below 0x20: exact for the "any byte" question since 0x20 <= 0x80.
        let control = x.wrapping_sub(0x20 * ONES) & !x & HIGHS != 0;
        if control
            || has_zero_byte(x ^ (u64::from(b'"') * ONES))
            || has_zero_byte(x ^ (u64::from(b'\\') * ONES))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// `text` as a JSON string.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text.as_bytes()) {
        // The rare string with escapes: serde_json's own escaping. Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, text);
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// `value` as compact JSON.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // Numbers as serde_json writes them (itoa, ryu). Writing to a Vec cannot fail.
        Value::Number(number) => {
            let _ = serde_json::to_writer(&mut *out, number);
        }
        Value::String(text) => write_str(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => write_map(out, map),
    }
}

/// `map` as a compact JSON object, in the map's order.
pub(crate) fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) {
    let mut object = Object::open(out);
    for (key, value) in map {
        object.entry(key, value);
    }
    object.close();
}

/// An object being written member by member, for writers that know their members (the
/// classifier's outputs): `{`, then `"name":value` pairs separated by commas, then `}`. Names
/// are the caller's constants, so they are written as they are.
pub(crate) struct Object<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Object<'o> {
    /// Writes `{`.
    pub(crate) fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, first: true }
    }

    fn separate(&mut self) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
    }

    /// A constant member name, written as it is.
    fn name(&mut self, name: &str) {
        debug_assert!(!needs_escape(name.as_bytes()), "member names are plain");
        self.separate();
        self.out.push(b'"');
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A member whose name comes from data (a map's key), escaped as any string.
    pub(crate) fn entry(&mut self, name: &str, value: &Value) {
        self.separate();
        write_str(self.out, name);
        self.out.push(b':');
        write_value(self.out, value);
    }

    /// A string member.
    pub(crate) fn str(&mut self, name: &str, text: &str) {
        self.name(name);
        write_str(self.out, text);
    }

    /// A string member when there is a string.
    pub(crate) fn opt_str(&mut self, name: &str, text: Option<&str>) {
        if let Some(text) = text {
            self.str(name, text);
        }
    }

    /// A boolean member.
    pub(crate) fn bool(&mut self, name: &str, value: bool) {
        self.name(name);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// An unsigned integer member, as serde_json writes it.
    pub(crate) fn u64(&mut self, name: &str, value: u64) {
        self.name(name);
        // Writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *self.out, &value);
    }

    /// A member of any JSON value.
    pub(crate) fn value(&mut self, name: &str, value: &Value) {
        self.name(name);
        write_value(self.out, value);
    }

    /// An object member.
    pub(crate) fn map(&mut self, name: &str, map: &Map<String, Value>) {
        self.name(name);
        write_map(self.out, map);
    }

    /// A member whose value the caller writes into the buffer it is handed (one JSON value).
    pub(crate) fn raw(&mut self, name: &str, write: impl FnOnce(&mut Vec<u8>)) {
        self.name(name);
        write(self.out);
    }

    /// Writes `}`.
    pub(crate) fn close(self) {
        self.out.push(b'}');
    }
}

/// About how many bytes `value` takes as JSON without escapes: enough to size a buffer once.
pub(crate) fn size_hint(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(_) => 5,
        Value::Number(_) => 20,
        Value::String(text) => text.len() + 2,
        Value::Array(items) => 2 + items.iter().map(|v| size_hint(v) + 1).sum::<usize>(),
        Value::Object(map) => map_size_hint(map),
    }
}

/// [`size_hint`] of an object.
pub(crate) fn map_size_hint(map: &Map<String, Value>) -> usize {
    2 + map
        .iter()
        .map(|(k, v)| k.len() + 4 + size_hint(v))
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn written(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write_value(&mut out, value);
        out
    }

    #[test]
    fn escapes_are_found_in_every_position() {
        for len in 0..20 {
            for at in 0..len {
                for special in [0u8, 0x1f, b'"', b'\\', b'\n'] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(needs_escape(&bytes), "{bytes:?}");
                }
                for plain in [0x20u8, 0x7f, b'/', b'!', b'#', b']', b'[', 0x5b, 0x5d] {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = plain;
                    assert!(!needs_escape(&bytes), "{bytes:?}");
                }
            }
        }
        assert!(!needs_escape("日本語 é \u{2028} \u{7f}".as_bytes()));
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let value = json!({
            "s": "plain", "e": "q\"b\\n\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f}é\u{2028}😀",
            "n": [0, -1, 1.5, 1e300, -0.0, 18446744073709551615u64, -9223372036854775808i64, 0.1],
            "o": {}, "a": [], "z": null, "t": true, "f": false, "": {"k\"": [{"x": "y"}]}
        });
        assert_eq!(written(&value), serde_json::to_vec(&value).unwrap());
    }

    fn arbitrary_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[\\x00-\\x7f]{0,20}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::btree_map("[\\x00-\\x7f]{0,6}|\\PC{0,4}", inner, 0..6)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_is_written_as_serde_json_writes_it(value in arbitrary_value()) {
            prop_assert_eq!(written(&value), serde_json::to_vec(&value).unwrap());
        }

        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in any::<String>(), ascii in "[\\x00-\\x7f]{0,40}") {
            for text in [text, ascii] {
                let mut out = Vec::new();
                write_str(&mut out, &text);
                prop_assert_eq!(out, serde_json::to_vec(&text).unwrap());
            }
        }
    }
}
