//! `report … --format html -o FILE`: one self-contained page per report — inline CSS, inline SVG
//! charts, no script, no external asset — that reads on a screen and prints on paper.
//!
//! Every text that comes from the store (an action name a producer chose, an ip) is escaped:
//! the page is opened by auditors, and a stored value must not become markup there.

use std::fmt::Write as _;

use super::figures::{Chart, ChartKind, Report, show};

/// `text` safe in HTML text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1b1f24;\
margin:2rem auto;max-width:60rem;padding:0 1rem;line-height:1.4}\
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;\
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}\
.range{color:#57606a;margin-top:0}\
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}\
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}\
figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}\
svg text{font-size:12px;fill:#1b1f24}svg .bar{fill:#0969da}svg .axis{stroke:#8c959f}\
.empty{color:#57606a;font-style:italic}\
@media print{body{margin:0;max-width:none}section,figure{break-inside:avoid}\
svg .bar{fill:#333}}";

/// The whole page of `report` `name` over `[from, to)`.
pub(crate) fn page(name: &str, from: &str, to: &str, report: &Report) -> String {
    let mut out = String::new();
    let title = format!("auditflow {name} report");
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n\
         <p class=\"range\">{} to {} · {} stored records</p>\n",
        escape(&title),
        escape(&title),
        escape(from),
        escape(to),
        report.records
    );
    for chart in &report.charts {
        out.push_str(&svg_figure(chart));
    }
    for section in &report.sections {
        let _ = write!(out, "<section>\n<h2>{}</h2>\n", escape(section.title));
        if section.rows.is_empty() {
            out.push_str("<p class=\"empty\">(none)</p>\n</section>\n");
            continue;
        }
        out.push_str("<table>\n<thead><tr>");
        for h in section.headers {
            let _ = write!(out, "<th>{}</th>", escape(h));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &section.rows {
            out.push_str("<tr>");
            for cell in row {
                let numeric = !cell.is_empty() && cell.parse::<f64>().is_ok();
                let class = if numeric { " class=\"n\"" } else { "" };
                let _ = write!(out, "<td{class}>{}</td>", escape(cell));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

const WIDTH: f64 = 720.0;

/// One chart as a figure with an inline SVG; a chart with nothing to draw says so instead.
fn svg_figure(chart: &Chart) -> String {
    let mut out = format!(
        "<figure class=\"chart\">\n<figcaption>{}</figcaption>\n",
        escape(chart.title)
    );
    let max = chart.bars.iter().map(|(_, v)| *v).fold(0.0, f64::max);
    if max <= 0.0 {
        out.push_str("<p class=\"empty\">(nothing in the range)</p>\n</figure>\n");
        return out;
    }
    match chart.kind {
        ChartKind::Categories => categories(&mut out, chart, max),
        ChartKind::Timeline => timeline(&mut out, chart, max),
    }
    out.push_str("</figure>\n");
    out
}

/// Horizontal bars, one per category, its value after it.
fn categories(out: &mut String, chart: &Chart, max: f64) {
    const ROW: f64 = 22.0;
    const LABEL: f64 = 220.0;
    const AREA: f64 = 420.0;
    let height = ROW * chart.bars.len() as f64 + 4.0;
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         viewBox=\"0 0 {WIDTH} {height}\" role=\"img\" aria-label=\"{}\">",
        escape(chart.title)
    );
    for (i, (label, value)) in chart.bars.iter().enumerate() {
        let y = ROW * i as f64 + 2.0;
        let w = (value / max * AREA).max(if *value > 0.0 { 1.0 } else { 0.0 });
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"bar\" x=\"{LABEL}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\">\
             <title>{}: {}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            LABEL - 6.0,
            y + 15.0,
            escape(label),
            ROW - 6.0,
            escape(label),
            show(*value),
            LABEL + w + 6.0,
            y + 15.0,
            show(*value)
        );
    }
    out.push_str("</svg>\n");
}

/// Vertical columns in time order, the first, middle and last bucket named under them.
fn timeline(out: &mut String, chart: &Chart, max: f64) {
    const HEIGHT: f64 = 200.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 36.0;
    const LEFT: f64 = 40.0;
    let n = chart.bars.len().max(1) as f64;
    let step = (WIDTH - LEFT - 10.0) / n;
    let plot = HEIGHT - TOP - BOTTOM;
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
        escape(chart.title),
        TOP + plot,
        WIDTH - 10.0,
        TOP + plot,
        LEFT - 4.0,
        TOP + 10.0,
        show(max)
    );
    let last = chart.bars.len().saturating_sub(1);
    for (i, (label, value)) in chart.bars.iter().enumerate() {
        let h = value / max * plot;
        let x = LEFT + step * i as f64;
        let _ = writeln!(
            out,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\">\
             <title>{}: {}</title></rect>",
            x + step * 0.1,
            TOP + plot - h,
            (step * 0.8).max(1.0),
            escape(label),
            show(*value)
        );
        if i == 0 || i == last || i == last / 2 {
            let anchor = match i {
                0 => "start",
                i if i == last => "end",
                _ => "middle",
            };
            let tx = match anchor {
                "start" => x,
                "end" => x + step,
                _ => x + step / 2.0,
            };
            let _ = writeln!(
                out,
                "<text x=\"{tx:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                HEIGHT - BOTTOM + 16.0,
                escape(label)
            );
        }
    }
    out.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::super::figures::Section;
    use super::*;
    use serde_json::json;

    fn report() -> Report {
        Report {
            json: json!({}),
            sections: vec![Section::new(
                "actions",
                &["ACTION", "COUNT"],
                vec![vec!["<script>alert(1)</script>".into(), "12".into()]],
            )],
            charts: vec![
                Chart {
                    title: "actions",
                    kind: ChartKind::Categories,
                    bars: vec![("login".into(), 12.0), ("logout".into(), 3.0)],
                },
                Chart {
                    title: "timeline",
                    kind: ChartKind::Timeline,
                    bars: vec![("d1".into(), 0.0), ("d2".into(), 5.0), ("d3".into(), 1.0)],
                },
                Chart {
                    title: "empty",
                    kind: ChartKind::Categories,
                    bars: vec![],
                },
            ],
            records: 15,
        }
    }

    #[test]
    fn a_page_is_self_contained_and_escapes_stored_text() {
        let html = page("security", "F", "T", &report());
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            !html.contains("<script"),
            "no script, and a stored one is escaped"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("src="), "no external asset");
        assert!(!html.contains("href="), "no external asset");
        assert_eq!(html.matches("<svg").count(), 2);
        assert_eq!(html.matches("class=\"bar\"").count(), 5);
        assert!(html.contains("(nothing in the range)"));
        assert!(html.contains("<td class=\"n\">12</td>"));
        assert!(html.contains("15 stored records"));
    }

    #[test]
    fn bars_are_proportional() {
        let mut out = String::new();
        categories(&mut out, &report().charts[0], 12.0);
        assert!(out.contains("width=\"420.0\""), "{out}");
        assert!(out.contains("width=\"105.0\""), "{out}");
    }
}
