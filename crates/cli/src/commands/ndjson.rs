//! Reading NDJSON input for the offline commands (`classify`, `detect`), safely.
//!
//! Input may be anything: invalid UTF-8, binary, a line of gigabytes. Lines are read as bytes
//! and never held beyond the record limit: the rest of an oversized line is skipped while
//! counting its size, so memory stays bounded by `max_record_bytes` whatever arrives.

use std::io::{self, BufRead};

use serde_json::{Map, Value};

/// One input line, without its `\n` (or `\r\n`). Numbers start at 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Text {
        number: u64,
        bytes: &'a [u8],
    },
    /// Longer than the limit; `size` is its length in bytes. Its content was not kept.
    TooLong {
        number: u64,
        size: usize,
    },
}

/// Splits a byte stream into [`Line`]s.
pub struct LineReader<R> {
    input: R,
    max_record_bytes: usize,
    buffer: Vec<u8>,
    number: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(input: R, max_record_bytes: usize) -> Self {
        Self {
            input,
            max_record_bytes,
            buffer: Vec::new(),
            number: 0,
        }
    }

    /// The next line, or `None` at the end of input. A last line without `\n` is a line; the
    /// empty text after a final `\n` is not.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buffer.clear();
        // One byte of slack for the `\r` of a `\r\n` ending.
        let keep_at_most = self.max_record_bytes.saturating_add(1);
        let (mut size, mut overflowed, mut started) = (0usize, false, false);
        loop {
            let available = match self.input.fill_buf() {
                Ok(available) => available,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !started {
                    return Ok(None);
                }
                break;
            }
            started = true;
            let newline = available.iter().position(|&b| b == b'\n');
            let chunk = &available[..newline.unwrap_or(available.len())];
            size += chunk.len();
            if !overflowed && self.buffer.len() + chunk.len() <= keep_at_most {
                self.buffer.extend_from_slice(chunk);
            } else {
                overflowed = true;
            }
            let used = chunk.len() + usize::from(newline.is_some());
            self.input.consume(used);
            if newline.is_some() {
                break;
            }
        }
        self.number += 1;
        let number = self.number;
        if !overflowed && self.buffer.last() == Some(&b'\r') {
            self.buffer.pop();
            size -= 1;
        }
        if overflowed || size > self.max_record_bytes {
            return Ok(Some(Line::TooLong { number, size }));
        }
        Ok(Some(Line::Text {
            number,
            bytes: &self.buffer,
        }))
    }
}

/// Whether a parsed line is a record line of `classify` or `detect` rather than a bare
/// CloudEvent. `classify` writes `{"topic", "key", "value"}` and dead-letter lines `{"topic", "error", ...}`.
/// A CloudEvent always has a `type` and never needs a wrapper's shape, so a line with `type` is
/// an event even if a producer gave it `topic` and `value` extensions.
pub fn is_classify_line(object: &Map<String, Value>) -> bool {
    object.get("topic").is_some_and(Value::is_string)
        && (object.contains_key("value") || object.contains_key("error"))
        && !object.contains_key("type")
}

/// Which side of the pipe failed.
#[derive(Debug)]
pub enum Failure {
    Read(io::Error),
    Write(io::Error),
}

/// Hands every line of `input` to `each`, which writes what it makes of it to `output`, until
/// the end of input or the first I/O failure; then flushes `output`. The offline commands'
/// loop (`classify`, `detect`, `ocsf`): they differ only in `each`.
pub fn each_line<W: io::Write>(
    input: impl BufRead,
    max_record_bytes: usize,
    mut output: W,
    mut each: impl FnMut(Line<'_>, &mut W) -> io::Result<()>,
) -> Result<(), Failure> {
    let mut lines = LineReader::new(input, max_record_bytes);
    let result = loop {
        let line = match lines.next_line() {
            Ok(Some(line)) => line,
            Ok(None) => break Ok(()),
            Err(e) => break Err(Failure::Read(e)),
        };
        if let Err(e) = each(line, &mut output) {
            break Err(Failure::Write(e));
        }
    };
    match output.flush() {
        Err(e) if result.is_ok() => Err(Failure::Write(e)),
        _ => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `Ok((number, bytes))` for a text line, `Err((number, size))` for one too long.
    type Read = Result<(u64, Vec<u8>), (u64, usize)>;

    fn lines(input: &[u8], max: usize) -> Vec<Read> {
        // A tiny buffer so lines span many reads.
        let mut reader = LineReader::new(io::BufReader::with_capacity(3, input), max);
        let mut out = Vec::new();
        while let Some(line) = reader.next_line().unwrap() {
            out.push(match line {
                Line::Text { number, bytes } => Ok((number, bytes.to_vec())),
                Line::TooLong { number, size } => Err((number, size)),
            });
        }
        out
    }

    #[test]
    fn splits_on_newlines_and_strips_crlf() {
        assert_eq!(
            lines(b"ab\r\n\ncd\n\xff\x00", 10),
            [
                Ok((1, b"ab".to_vec())),
                Ok((2, vec![])),
                Ok((3, b"cd".to_vec())),
                Ok((4, b"\xff\x00".to_vec()))
            ]
        );
        assert!(lines(b"", 10).is_empty());
        assert_eq!(lines(b"x\n", 10), [Ok((1, b"x".to_vec()))]);
    }

    #[test]
    fn oversized_lines_are_measured_not_kept() {
        let mut input = vec![b'a'; 5];
        input.push(b'\n');
        input.extend(vec![b'b'; 6]);
        input.extend_from_slice(b"\r\n");
        input.extend(vec![b'c'; 100]);
        input.extend_from_slice(b"\nok");
        assert_eq!(
            lines(&input, 5),
            [
                Ok((1, b"aaaaa".to_vec())),
                Err((2, 7)),
                Err((3, 100)),
                Ok((4, b"ok".to_vec()))
            ]
        );
        // Exactly at the limit with a CRLF ending is fine.
        assert_eq!(lines(b"aaaaa\r\n", 5), [Ok((1, b"aaaaa".to_vec()))]);
    }
}
