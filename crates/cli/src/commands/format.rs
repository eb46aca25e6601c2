//! Output formats of the commands that print records and reports (`query`, `report`):
//! `--format table|json|csv` (`--json` is `--format json`).
//!
//! CSV is RFC 4180: fields with a comma, a quote or a line break are quoted, quotes doubled,
//! lines end in CRLF. A field that a spreadsheet would run as a formula (starting with `=`, `+`,
//! `-`, `@`, a tab or a carriage return) is prefixed with `'`: a stored value — an action name
//! a producer chose, an ip — must not become a formula on an auditor's machine (OWASP "CSV
//! injection"). Written by hand: quoting is the whole of writing CSV, and the `csv` crate would
//! add a dependency for these lines.

use std::fmt::Write as _;

/// How a command prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// RFC 4180 CSV.
    Csv,
    /// A self-contained HTML page with charts (reports, with `-o FILE`).
    Html,
    /// One OCSF 1.8.0 event per line (`query`; docs/ocsf.md).
    Ocsf,
}

impl Format {
    /// `--format`, or JSON when the global `--json` was given, else a table.
    pub fn chosen(format: Option<Format>, json: bool) -> Format {
        match (format, json) {
            (Some(f), _) => f,
            (None, true) => Format::Json,
            (None, false) => Format::Table,
        }
    }
}

/// One CSV field.
fn field(out: &mut String, value: &str) {
    let risky = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let value = if risky {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(&value);
    }
}

/// One CSV record, CRLF-terminated.
pub fn csv_row<S: AsRef<str>>(out: &mut String, cells: &[S]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, cell.as_ref());
    }
    out.push_str("\r\n");
}

/// A table as CSV: the header, then the rows.
pub fn csv_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    csv_row(&mut out, headers);
    for row in rows {
        csv_row(&mut out, row);
    }
    out
}

/// `rows` under `headers`, each column as wide as its widest cell.
pub fn text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells.zip(&widths).map(|(c, w)| format!("{c:w$}")).collect();
        let _ = writeln!(out, "{}", padded.join("  ").trim_end());
    };
    line(&mut headers.iter().copied());
    for r in rows {
        line(&mut r.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it_and_defuses_formulas() {
        let rows = vec![
            vec!["plain".to_owned(), "a,b".to_owned()],
            vec!["say \"hi\"".to_owned(), "two\nlines".to_owned()],
            vec!["=HYPERLINK(\"x\")".to_owned(), "@SUM(A1)".to_owned()],
        ];
        assert_eq!(
            csv_table(&["A", "B"], &rows),
            "A,B\r\nplain,\"a,b\"\r\n\"say \"\"hi\"\"\",\"two\nlines\"\r\n\
             \"'=HYPERLINK(\"\"x\"\")\",'@SUM(A1)\r\n"
        );
    }

    #[test]
    fn tables_align_columns() {
        let rows = vec![vec!["login".to_owned(), "12".to_owned()]];
        assert_eq!(
            text_table(&["ACTION", "N"], &rows),
            "ACTION  N\nlogin   12\n"
        );
    }

    #[test]
    fn json_flag_is_the_json_format() {
        assert_eq!(Format::chosen(None, true), Format::Json);
        assert_eq!(Format::chosen(None, false), Format::Table);
        assert_eq!(Format::chosen(Some(Format::Csv), true), Format::Csv);
    }
}
