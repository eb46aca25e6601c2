//! `auditflow trail <id>` and `auditflow trail --correlation <id>` (docs/cli.md): an
//! event's causal chain, or a whole conversation, from the causality index.
//!
//! `trail <id>` takes an input event id, an audit record id or an alert id and prints the
//! ancestors up to the root, then the event and its descendants as an indented tree, each with
//! type and time; cycles, effects dated before their causes and the places where a bound cut
//! the walk are printed after the tree (the walk itself is `auditflow_store::causality::trail`).
//! `--correlation` prints the conversation's records in time order. `--json` prints the same as
//! one JSON document. An id the index does not know is a failure (exit 1).

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::bail;
use auditflow_core::Config;
use auditflow_store::Store;
use auditflow_store::causality::trail::{
    Anomaly, Cut, KnownAs, Stop, Trail, TrailLimits, TrailNode, TreeNode, walk,
};
use auditflow_store::causality::{CausalRecord, CausalityIndex, MAX_READ};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::operator_log::Audited;
use crate::cli::TrailArgs;

pub fn run(
    args: &TrailArgs,
    config: &Config,
    json: bool,
    out: &mut Audited,
) -> anyhow::Result<ExitCode> {
    let target = match (&args.event_id, &args.correlation) {
        (Some(id), None) if !id.is_empty() => Target::Event(id),
        (None, Some(id)) if !id.is_empty() => Target::Correlation(id),
        _ => {
            eprintln!("auditflow trail: give an event id, or --correlation <id>");
            return Ok(ExitCode::from(2));
        }
    };
    let runtime = super::runtime()?;
    runtime.block_on(async {
        let store = Store::connect(&config.store, &config.retention).await?;
        let index = CausalityIndex::open(Arc::new(store)).await?;
        match target {
            Target::Event(id) => {
                let Some(trail) = walk(&index, id, TrailLimits::default()).await? else {
                    bail!("no event with id {id:?} in the causality index");
                };
                if json {
                    out.line(serde_json::to_string(&trail)?);
                } else {
                    out.text(render_trail(&trail));
                }
            }
            Target::Correlation(id) => {
                let members = index.members(id, MAX_READ).await?;
                if members.items.is_empty() {
                    bail!("no event with correlation id {id:?} in the causality index");
                }
                out.records = Some(members.items.len() as u64);
                if json {
                    out.line(json!({
                        "correlation_id": id,
                        "members": members.items,
                        "more": members.more,
                    }));
                } else {
                    out.text(render_conversation(id, &members.items, members.more));
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

enum Target<'a> {
    Event(&'a str),
    Correlation(&'a str),
}

/// The human form of a trail: ancestors, the tree, then what the walk found wrong or cut.
pub(crate) fn render_trail(trail: &Trail) -> String {
    let mut out = String::new();
    if trail.ancestors.is_empty() {
        out.push_str("ancestors: none known\n");
    } else {
        out.push_str("ancestors, root first:\n");
        for (i, node) in trail.ancestors.iter().enumerate() {
            let arrow = if i == 0 { "  " } else { "  ↳ " };
            let _ = writeln!(out, "{arrow}{}", describe(node));
        }
    }
    out.push_str("event and descendants:\n");
    let _ = writeln!(out, "{}{}", describe(&trail.tree.node), marker(&trail.tree));
    render_children(&trail.tree, "", trail.limits, &mut out);
    for anomaly in &trail.anomalies {
        let _ = writeln!(out, "warning: {}", explain_anomaly(anomaly));
    }
    for cut in &trail.cuts {
        let _ = writeln!(out, "cut: {}", explain_cut(cut));
    }
    out
}

fn render_children(node: &TreeNode, prefix: &str, limits: TrailLimits, out: &mut String) {
    let count = node.children.len();
    for (i, child) in node.children.iter().enumerate() {
        let last = i + 1 == count && !node.more_children;
        let (branch, indent) = if last {
            ("└── ", "    ")
        } else {
            ("├── ", "│   ")
        };
        let _ = writeln!(
            out,
            "{prefix}{branch}{}{}",
            describe(&child.node),
            marker(child)
        );
        render_children(child, &format!("{prefix}{indent}"), limits, out);
    }
    if node.more_children {
        let _ = writeln!(
            out,
            "{prefix}└── … more children not shown (at most {} per event, {} in all)",
            limits.max_fan_out, limits.max_nodes
        );
    }
}

/// One node: id, type, time, then what else is known.
fn describe(node: &TrailNode) -> String {
    let mut line = format!(
        "{}  {}  {}",
        node.id,
        node.event_type.as_deref().unwrap_or("?"),
        node.time.map_or_else(|| "?".to_owned(), time),
    );
    if let Some(summary) = &node.summary {
        let _ = write!(line, "  {summary}");
    }
    if let Some(original) = &node.original_type {
        let _ = write!(line, "  (from {original})");
    }
    match node.known_as {
        KnownAs::Indexed => {}
        KnownAs::Input => line.push_str("  input event (type and time from its audit record)"),
        KnownAs::Unindexed => line.push_str("  not indexed (yet)"),
    }
    line
}

fn marker(node: &TreeNode) -> &'static str {
    match node.stop {
        None => "",
        Some(Stop::Cycle) => "  ↻ cycle: already above, not followed",
        Some(Stop::Repeated) => "  (shown above)",
        Some(Stop::DepthLimit) => "  … children not shown (depth limit)",
        Some(Stop::NodeLimit) => "  … children not read (node limit)",
    }
}

fn explain_anomaly(anomaly: &Anomaly) -> String {
    match anomaly {
        Anomaly::Cycle { cause, effect } => format!(
            "cycle: {effect} is named as caused by {cause}, which it already causes; not followed"
        ),
        Anomaly::EffectBeforeCause {
            cause,
            cause_time,
            effect,
            effect_time,
        } => format!(
            "effect before cause: {effect} ({}) is dated before its cause {cause} ({})",
            time(*effect_time),
            time(*cause_time)
        ),
    }
}

fn explain_cut(cut: &Cut) -> String {
    match cut {
        Cut::Ancestors { at, max_depth } => {
            format!(
                "{at} has causes above the {max_depth} ancestors shown; the first is not the root"
            )
        }
        Cut::Depth { at, max_depth } => {
            format!("{at} has descendants deeper than {max_depth} levels")
        }
        Cut::FanOut { at, shown } => format!("{at} has more children than the {shown} shown"),
        Cut::Nodes { max_nodes } => {
            format!("the tree reached {max_nodes} events; the rest was not read")
        }
    }
}

/// A conversation, one record a line in time order: time, id, type, labels, cause.
fn render_conversation(id: &str, members: &[CausalRecord], more: bool) -> String {
    let mut out = format!("conversation {id}, in time order:\n");
    for r in members {
        let _ = write!(out, "{}  {}  {}", time(r.time), r.id, r.event_type);
        if let Some(summary) = &r.summary {
            let _ = write!(out, "  {summary}");
        }
        if let Some(original) = &r.original_type {
            let _ = write!(out, "  (from {original})");
        }
        if let Some(cause) = &r.causation_id {
            let _ = write!(out, "  ← {cause}");
        }
        out.push('\n');
    }
    if more {
        let _ = writeln!(
            out,
            "cut: only the first {} events are shown",
            members.len()
        );
    }
    out
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_core::RetentionClass;
    use chrono::TimeZone;

    fn node(id: &str, ty: &str, known_as: KnownAs) -> TrailNode {
        TrailNode {
            id: id.into(),
            event_type: Some(ty.into()),
            time: Some(Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 1).unwrap()),
            known_as,
            ..TrailNode::default()
        }
    }

    fn leaf(node: TrailNode) -> TreeNode {
        TreeNode {
            node,
            children: Vec::new(),
            stop: None,
            more_children: false,
        }
    }

    #[test]
    fn a_trail_reads_as_ancestors_then_an_indented_tree() {
        let mut alert = leaf(TrailNode {
            summary: Some("brute_force medium 50".into()),
            ..node("alert-1", "security.alert", KnownAs::Indexed)
        });
        let mut cycle = leaf(node("loop-1", "security.action", KnownAs::Indexed));
        cycle.stop = Some(Stop::Cycle);
        alert.children = vec![
            leaf(node("action-1", "security.action", KnownAs::Indexed)),
            cycle,
        ];
        alert.children[0].children = vec![leaf(node("x", "t", KnownAs::Indexed))];
        alert.more_children = true;
        let trail = Trail {
            id: "alert-1".into(),
            ancestors: vec![
                node("in-6", "user.login.attempt", KnownAs::Input),
                TrailNode {
                    original_type: Some("user.login.attempt".into()),
                    ..node("sec-1", "audit.security.event", KnownAs::Indexed)
                },
            ],
            tree: alert,
            anomalies: vec![Anomaly::Cycle {
                cause: "alert-1".into(),
                effect: "loop-1".into(),
            }],
            cuts: vec![Cut::FanOut {
                at: "alert-1".into(),
                shown: 2,
            }],
            limits: TrailLimits::default(),
        };
        let t = "2026-11-20T10:00:01.000Z";
        let expected = format!(
            "ancestors, root first:
  in-6  user.login.attempt  {t}  input event (type and time from its audit record)
  ↳ sec-1  audit.security.event  {t}  (from user.login.attempt)
event and descendants:
alert-1  security.alert  {t}  brute_force medium 50
├── action-1  security.action  {t}
│   └── x  t  {t}
├── loop-1  security.action  {t}  ↻ cycle: already above, not followed
└── … more children not shown (at most 100 per event, 2000 in all)
warning: cycle: loop-1 is named as caused by alert-1, which it already causes; not followed
cut: alert-1 has more children than the 2 shown
"
        );
        assert_eq!(render_trail(&trail), expected);
    }

    #[test]
    fn a_conversation_reads_in_time_order_with_causes() {
        let record = CausalRecord {
            id: "ua-1".into(),
            event_type: "audit.user.action".into(),
            original_type: Some("user.created".into()),
            time: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap(),
            causation_id: Some("in-1".into()),
            correlation_id: Some("c".into()),
            topic: "audit.user.action".into(),
            summary: Some("account_created success low".into()),
            class: RetentionClass::General,
        };
        assert_eq!(
            render_conversation("c", &[record], true),
            "conversation c, in time order:\n\
             2026-11-20T10:00:00.000Z  ua-1  audit.user.action  account_created success low  \
             (from user.created)  ← in-1\n\
             cut: only the first 1 events are shown\n"
        );
    }
}
