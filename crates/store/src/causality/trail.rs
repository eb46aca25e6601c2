//! Walking the causality graph: an event's ancestors up to the root, then its descendants as a
//! tree — what `auditflow trail <id>` shows.
//!
//! The walk is written against [`CausalGraph`], two lookups (a record by id, a parent's
//! children), so it is tested on an in-memory graph; [`CausalityIndex`] is the real one.
//!
//! The graph is built from what producers and services claim (`causationid`), so it is not
//! trusted to be a tree. As Jido.Signal's journal does, the walk reports instead of following:
//! - a **cycle** (an event that is, through its causes, its own cause): the edge that closes
//!   it is reported and not followed;
//! - an **effect dated before its cause**: reported, and the walk goes on;
//! - a record reached twice by different parents (a re-used id): shown once, then marked.
//!
//! Every walk is bounded: at most `max_depth` ancestors and levels of descendants, at most
//! `max_fan_out` children per record, at most `max_nodes` records in all. Where a bound cuts
//! the trail, the trail says so ([`Cut`]).
//!
//! A node need not be indexed: the producers' input events are never on an audit topic, but
//! every audit record names its input as its cause. Such a node is known through its children;
//! its type and time are those its audit record carries (`originaltype`; an audit record's
//! time is its input's).

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Bounded, CausalRecord, CausalityIndex};
use crate::StoreError;

/// The lookups a walk needs.
pub trait CausalGraph {
    /// What a failed lookup says; the walk stops and hands it back unchanged.
    type Error;

    /// The indexed record with this id.
    fn node(&self, id: &str) -> impl Future<Output = Result<Option<CausalRecord>, Self::Error>>;

    /// The records `parent` caused, oldest first, at most `limit`.
    fn children(
        &self,
        parent: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Bounded<CausalRecord>, Self::Error>>;
}

impl CausalGraph for CausalityIndex {
    type Error = StoreError;

    fn node(&self, id: &str) -> impl Future<Output = Result<Option<CausalRecord>, StoreError>> {
        CausalityIndex::node(self, id)
    }

    fn children(
        &self,
        parent: &str,
        limit: usize,
    ) -> impl Future<Output = Result<Bounded<CausalRecord>, StoreError>> {
        CausalityIndex::children(self, parent, limit)
    }
}

/// How far a walk may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TrailLimits {
    /// Ancestors above the event, and levels of descendants below it.
    pub max_depth: usize,
    /// Children shown per record.
    pub max_fan_out: usize,
    /// Records in the descendant tree.
    pub max_nodes: usize,
}

impl Default for TrailLimits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_fan_out: 100,
            max_nodes: 2_000,
        }
    }
}

/// What is known of one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TrailNode {
    /// The event's id.
    pub id: String,
    /// `None` when nothing is known of the node but its id.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The event's time, when known (an input's is its audit record's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<DateTime<Utc>>,
    /// Where this description comes from, so a reader knows how much to trust it.
    pub known_as: KnownAs,
    /// An indexed audit record's input type (`originaltype`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub original_type: Option<String>,
    /// An indexed record's non-personal labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// The topic an indexed record was consumed from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// The causal chain it belongs to (for an input, its audit record's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

/// Where a node's description comes from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KnownAs {
    /// A record the indexer consumed.
    Indexed,
    /// An input event: known as the cause of an audit record, whose `originaltype` and time
    /// it has.
    Input,
    /// Named as a cause, but not (yet) indexed itself.
    #[default]
    Unindexed,
}

impl TrailNode {
    fn indexed(r: &CausalRecord) -> Self {
        Self {
            id: r.id.clone(),
            event_type: Some(r.event_type.clone()),
            time: Some(r.time),
            known_as: KnownAs::Indexed,
            original_type: r.original_type.clone(),
            summary: r.summary.clone(),
            topic: Some(r.topic.clone()),
            correlation_id: r.correlation_id.clone(),
        }
    }

    /// A node known only as the cause of `child` (when there is one).
    fn cause_of(id: &str, child: Option<&CausalRecord>) -> Self {
        let input = child.filter(|c| c.original_type.is_some());
        Self {
            id: id.to_owned(),
            event_type: input.and_then(|c| c.original_type.clone()),
            time: input.map(|c| c.time),
            known_as: if input.is_some() {
                KnownAs::Input
            } else {
                KnownAs::Unindexed
            },
            original_type: None,
            summary: None,
            topic: None,
            correlation_id: child.and_then(|c| c.correlation_id.clone()),
        }
    }
}

/// One record of the descendant tree and what the walk found below it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeNode {
    /// The record itself.
    #[serde(flatten)]
    pub node: TrailNode,
    /// What it caused, oldest first, each with its own subtree.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<TreeNode>,
    /// Why the walk did not look (further) below this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    /// More children exist than are shown (fan-out limit).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub more_children: bool,
}

/// Why a node's children are not shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The node is already above it in the trail: following it would loop.
    Cycle,
    /// The node is shown elsewhere in the tree.
    Repeated,
    /// It has children, below the depth limit.
    DepthLimit,
    /// The node limit was reached before its children were read.
    NodeLimit,
}

/// Something wrong with the graph, found on the way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// `cause` is named as the cause of `effect`, but `effect` is already a cause of `cause`.
    Cycle {
        /// The id named as the cause.
        cause: String,
        /// The id it is said to have caused.
        effect: String,
    },
    /// `effect` is dated before the event that caused it.
    EffectBeforeCause {
        /// The cause's id.
        cause: String,
        /// The cause's time.
        cause_time: DateTime<Utc>,
        /// The effect's id.
        effect: String,
        /// The effect's time, earlier than `cause_time`.
        effect_time: DateTime<Utc>,
    },
}

/// Where a limit cut the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Cut {
    /// `at` has a cause beyond the depth limit: the first ancestor shown is not the root.
    Ancestors {
        /// The highest ancestor shown.
        at: String,
        /// The depth limit that stopped the walk up.
        max_depth: usize,
    },
    /// `at` has children beyond the depth limit.
    Depth {
        /// The deepest node shown on that branch.
        at: String,
        /// The depth limit that stopped the walk down.
        max_depth: usize,
    },
    /// `at` has more than `shown` children.
    FanOut {
        /// The node whose children were cut.
        at: String,
        /// How many of them are shown (the fan-out limit).
        shown: usize,
    },
    /// The tree reached `max_nodes` records; nodes whose children were not read are marked.
    Nodes {
        /// The node limit reached.
        max_nodes: usize,
    },
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trail {
    /// The event the walk started from.
    pub id: String,
    /// Root first; the last is the event's cause. Empty when the event has no known cause.
    pub ancestors: Vec<TrailNode>,
    /// The event and its descendants.
    pub tree: TreeNode,
    /// Cycles and effects dated before their causes, reported instead of followed.
    pub anomalies: Vec<Anomaly>,
    /// Where a limit stopped the walk, so a partial trail never looks whole.
    pub cuts: Vec<Cut>,
    /// The limits the walk ran under.
    pub limits: TrailLimits,
}

/// Walks the trail of `id`; `None` when the graph knows nothing of it (neither a record nor
/// the cause of one).
pub async fn walk<G: CausalGraph>(
    graph: &G,
    id: &str,
    limits: TrailLimits,
) -> Result<Option<Trail>, G::Error> {
    let limits = TrailLimits {
        max_depth: limits.max_depth.max(1),
        max_fan_out: limits.max_fan_out.max(1),
        max_nodes: limits.max_nodes.max(1),
    };
    let mut walk = Walk {
        limits,
        anomalies: Vec::new(),
        cuts: Vec::new(),
    };
    // An id that is no record may still be the cause of some (an input event): then its
    // children, read to describe it, are the first level of its tree.
    let (start, ancestors, prefetched) = match graph.node(id).await? {
        Some(record) => {
            let ancestors = walk.ancestors(graph, &record).await?;
            (TrailNode::indexed(&record), ancestors, None)
        }
        None => {
            let children = graph.children(id, limits.max_fan_out).await?;
            let Some(first) = children.items.first() else {
                return Ok(None);
            };
            (
                TrailNode::cause_of(id, Some(first)),
                Vec::new(),
                Some(children),
            )
        }
    };
    let above: HashSet<&str> = ancestors.iter().map(|n| n.id.as_str()).collect();
    let tree = walk.descendants(graph, start, &above, prefetched).await?;
    Ok(Some(Trail {
        id: id.to_owned(),
        ancestors,
        tree,
        anomalies: walk.anomalies,
        cuts: walk.cuts,
        limits,
    }))
}

struct Walk {
    limits: TrailLimits,
    anomalies: Vec<Anomaly>,
    cuts: Vec<Cut>,
}

/// A node of the tree under construction: children by index, so the tree can be built breadth
/// first (the node budget is then spent on the levels nearest the event).
struct Slot {
    node: TrailNode,
    parent: Option<usize>,
    depth: usize,
    children: Vec<usize>,
    stop: Option<Stop>,
    more_children: bool,
}

impl Walk {
    /// From `record` up, nearest first until reversed: root first.
    async fn ancestors<G: CausalGraph>(
        &mut self,
        graph: &G,
        record: &CausalRecord,
    ) -> Result<Vec<TrailNode>, G::Error> {
        let mut path: HashSet<String> = HashSet::from([record.id.clone()]);
        let mut ancestors = Vec::new();
        let mut child = record.clone();
        while let Some(cause) = child.causation_id.clone() {
            if path.contains(&cause) {
                self.anomaly(Anomaly::Cycle {
                    cause,
                    effect: child.id.clone(),
                });
                break;
            }
            if ancestors.len() >= self.limits.max_depth {
                self.cut(Cut::Ancestors {
                    at: child.id.clone(),
                    max_depth: self.limits.max_depth,
                });
                break;
            }
            path.insert(cause.clone());
            match graph.node(&cause).await? {
                Some(parent) => {
                    self.check_order(&parent.id, parent.time, &child);
                    ancestors.push(TrailNode::indexed(&parent));
                    child = parent;
                }
                None => {
                    ancestors.push(TrailNode::cause_of(&cause, Some(&child)));
                    break;
                }
            }
        }
        ancestors.reverse();
        Ok(ancestors)
    }

    /// `start` and what it caused, breadth first. `above` are the ancestors' ids: meeting one
    /// again below is a cycle.
    async fn descendants<G: CausalGraph>(
        &mut self,
        graph: &G,
        start: TrailNode,
        above: &HashSet<&str>,
        mut prefetched: Option<Bounded<CausalRecord>>,
    ) -> Result<TreeNode, G::Error> {
        let mut slots = vec![Slot::new(start, None, 0)];
        let mut index: HashMap<String, usize> = HashMap::from([(slots[0].node.id.clone(), 0)]);
        let mut queue = VecDeque::from([0]);
        while let Some(at) = queue.pop_front() {
            let id = slots[at].node.id.clone();
            if slots.len() >= self.limits.max_nodes {
                slots[at].stop = Some(Stop::NodeLimit);
                for rest in queue.drain(..) {
                    slots[rest].stop = Some(Stop::NodeLimit);
                }
                self.cut(Cut::Nodes {
                    max_nodes: self.limits.max_nodes,
                });
                break;
            }
            if slots[at].depth >= self.limits.max_depth {
                // One row read tells whether the limit hides anything.
                if !graph.children(&id, 1).await?.items.is_empty() {
                    slots[at].stop = Some(Stop::DepthLimit);
                    self.cut(Cut::Depth {
                        at: id,
                        max_depth: self.limits.max_depth,
                    });
                }
                continue;
            }
            let children = match prefetched.take() {
                Some(children) => children,
                None => graph.children(&id, self.limits.max_fan_out).await?,
            };
            if children.more {
                slots[at].more_children = true;
                self.cut(Cut::FanOut {
                    at: id.clone(),
                    shown: children.items.len(),
                });
            }
            let room = self.limits.max_nodes.saturating_sub(slots.len());
            if children.items.len() > room {
                slots[at].more_children = true;
                self.cut(Cut::Nodes {
                    max_nodes: self.limits.max_nodes,
                });
            }
            for child in children.items.into_iter().take(room) {
                if let Some(time) = slots[at].node.time
                    && slots[at].node.known_as == KnownAs::Indexed
                {
                    self.check_order(&id, time, &child);
                }
                let new = slots.len();
                let depth = slots[at].depth + 1;
                let repeat =
                    if above.contains(child.id.as_str()) || is_on_path(&slots, at, &child.id) {
                        self.anomaly(Anomaly::Cycle {
                            cause: id.clone(),
                            effect: child.id.clone(),
                        });
                        Some(Stop::Cycle)
                    } else if index.contains_key(&child.id) {
                        Some(Stop::Repeated)
                    } else {
                        None
                    };
                let mut slot = Slot::new(TrailNode::indexed(&child), Some(at), depth);
                slot.stop = repeat;
                if repeat.is_none() {
                    index.insert(child.id.clone(), new);
                    queue.push_back(new);
                }
                slots.push(slot);
                slots[at].children.push(new);
            }
        }
        Ok(build(&mut slots, 0))
    }

    fn check_order(&mut self, cause: &str, cause_time: DateTime<Utc>, effect: &CausalRecord) {
        if effect.time < cause_time {
            self.anomaly(Anomaly::EffectBeforeCause {
                cause: cause.to_owned(),
                cause_time,
                effect: effect.id.clone(),
                effect_time: effect.time,
            });
        }
    }

    fn anomaly(&mut self, anomaly: Anomaly) {
        if !self.anomalies.contains(&anomaly) {
            self.anomalies.push(anomaly);
        }
    }

    fn cut(&mut self, cut: Cut) {
        if !self.cuts.contains(&cut) {
            self.cuts.push(cut);
        }
    }
}

impl Slot {
    fn new(node: TrailNode, parent: Option<usize>, depth: usize) -> Self {
        Self {
            node,
            parent,
            depth,
            children: Vec::new(),
            stop: None,
            more_children: false,
        }
    }
}

/// Is `id` the node at `at` or one of its ancestors in the tree?
fn is_on_path(slots: &[Slot], mut at: usize, id: &str) -> bool {
    loop {
        if slots[at].node.id == id {
            return true;
        }
        match slots[at].parent {
            Some(parent) => at = parent,
            None => return false,
        }
    }
}

/// The nested tree below `at`. Recursion is bounded by the depth limit.
fn build(slots: &mut [Slot], at: usize) -> TreeNode {
    let children: Vec<usize> = std::mem::take(&mut slots[at].children);
    let built = children.into_iter().map(|c| build(slots, c)).collect();
    let slot = &mut slots[at];
    TreeNode {
        node: std::mem::take(&mut slot.node),
        children: built,
        stop: slot.stop,
        more_children: slot.more_children,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditflow_core::RetentionClass;
    use chrono::TimeZone;
    use std::convert::Infallible;

    /// An in-memory graph: records by id; children derived from their `causation_id`.
    #[derive(Default)]
    struct Graph {
        records: Vec<CausalRecord>,
    }

    impl Graph {
        fn add(&mut self, id: &str, cause: Option<&str>, second: u32) -> &mut Self {
            self.records.push(CausalRecord {
                id: id.into(),
                event_type: format!("type.{id}"),
                original_type: None,
                time: Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, second).unwrap(),
                causation_id: cause.map(Into::into),
                correlation_id: Some("corr".into()),
                topic: "audit.user.action".into(),
                summary: None,
                class: RetentionClass::General,
            });
            self
        }

        fn audit(&mut self, id: &str, input: &str, second: u32) -> &mut Self {
            self.add(id, Some(input), second);
            self.records.last_mut().unwrap().original_type = Some("user.login.attempt".into());
            self
        }
    }

    impl CausalGraph for Graph {
        type Error = Infallible;

        async fn node(&self, id: &str) -> Result<Option<CausalRecord>, Infallible> {
            Ok(self.records.iter().find(|r| r.id == id).cloned())
        }

        async fn children(
            &self,
            parent: &str,
            limit: usize,
        ) -> Result<Bounded<CausalRecord>, Infallible> {
            let mut items: Vec<CausalRecord> = self
                .records
                .iter()
                .filter(|r| r.causation_id.as_deref() == Some(parent))
                .cloned()
                .collect();
            items.sort_by(|a, b| (a.time, &a.id).cmp(&(b.time, &b.id)));
            let more = items.len() > limit;
            items.truncate(limit);
            Ok(Bounded { items, more })
        }
    }

    fn run(graph: &Graph, id: &str, limits: TrailLimits) -> Option<Trail> {
        futures::executor::block_on(walk(graph, id, limits)).unwrap()
    }

    fn ids(nodes: &[TrailNode]) -> Vec<&str> {
        nodes.iter().map(|n| n.id.as_str()).collect()
    }

    /// The tree as `id(child, child)` text, with stops as `!cycle` etc.
    fn shape(t: &TreeNode) -> String {
        let mut s = t.node.id.clone();
        match t.stop {
            Some(Stop::Cycle) => s.push_str("!cycle"),
            Some(Stop::Repeated) => s.push_str("!repeated"),
            Some(Stop::DepthLimit) => s.push_str("!depth"),
            Some(Stop::NodeLimit) => s.push_str("!nodes"),
            None => {}
        }
        if t.more_children {
            s.push('+');
        }
        if !t.children.is_empty() {
            let kids: Vec<String> = t.children.iter().map(shape).collect();
            s.push_str(&format!("({})", kids.join(", ")));
        }
        s
    }

    /// The recipe's chain: input → audit records; security event → alert → actions.
    fn chain() -> Graph {
        let mut g = Graph::default();
        g.audit("ua", "in", 1)
            .audit("se", "in", 1)
            .add("alert", Some("se"), 1)
            .add("block", Some("alert"), 1)
            .add("disable", Some("alert"), 1);
        g
    }

    #[test]
    fn from_an_alert_ancestors_to_the_input_and_actions_below() {
        let t = run(&chain(), "alert", TrailLimits::default()).unwrap();
        assert_eq!(ids(&t.ancestors), ["in", "se"]);
        let input = &t.ancestors[0];
        assert_eq!(input.known_as, KnownAs::Input);
        assert_eq!(input.event_type.as_deref(), Some("user.login.attempt"));
        assert_eq!(input.time, Some(chain().records[1].time));
        assert_eq!(shape(&t.tree), "alert(block, disable)");
        assert!(t.anomalies.is_empty() && t.cuts.is_empty(), "{t:?}");
    }

    #[test]
    fn from_an_input_event_known_only_as_a_cause() {
        let t = run(&chain(), "in", TrailLimits::default()).unwrap();
        assert!(t.ancestors.is_empty());
        assert_eq!(t.tree.node.known_as, KnownAs::Input);
        // Siblings in time order, then by id.
        assert_eq!(shape(&t.tree), "in(se(alert(block, disable)), ua)");
    }

    #[test]
    fn an_unknown_id_is_none() {
        assert_eq!(run(&chain(), "nope", TrailLimits::default()), None);
    }

    #[test]
    fn a_cause_not_indexed_yet_is_shown_without_a_type() {
        let mut g = Graph::default();
        g.add("alert", Some("se-not-yet"), 1);
        let t = run(&g, "alert", TrailLimits::default()).unwrap();
        assert_eq!(t.ancestors[0].known_as, KnownAs::Unindexed);
        assert_eq!(t.ancestors[0].event_type, None);
    }

    #[test]
    fn a_cycle_is_reported_not_followed() {
        let mut g = Graph::default();
        g.add("a", Some("c"), 1)
            .add("b", Some("a"), 1)
            .add("c", Some("b"), 1);
        let t = run(&g, "a", TrailLimits::default()).unwrap();
        // Up from `a`: `c`, `b`, then `a` again: reported, and the walk stops.
        assert_eq!(ids(&t.ancestors), ["b", "c"]);
        // Below `a`: `b`, which is already above: shown, marked, not followed.
        assert_eq!(shape(&t.tree), "a(b!cycle)");
        assert_eq!(
            t.anomalies,
            [Anomaly::Cycle {
                cause: "a".into(),
                effect: "b".into()
            }]
        );
        // From a node of the cycle, whichever: the same bounded answer.
        let t = run(&g, "c", TrailLimits::default()).unwrap();
        assert_eq!(ids(&t.ancestors), ["a", "b"]);
        assert_eq!(shape(&t.tree), "c(a!cycle)");
    }

    #[test]
    fn a_record_that_is_its_own_cause_is_a_cycle_of_one() {
        let mut g = Graph::default();
        g.add("self", Some("self"), 1);
        let t = run(&g, "self", TrailLimits::default()).unwrap();
        assert!(t.ancestors.is_empty());
        assert_eq!(shape(&t.tree), "self(self!cycle)");
        assert_eq!(
            t.anomalies,
            [Anomaly::Cycle {
                cause: "self".into(),
                effect: "self".into()
            }]
        );
    }

    #[test]
    fn an_effect_dated_before_its_cause_is_reported() {
        let mut g = Graph::default();
        g.add("root", None, 30)
            .add("early", Some("root"), 10)
            .add("later", Some("early"), 20);
        let t = run(&g, "later", TrailLimits::default()).unwrap();
        assert_eq!(ids(&t.ancestors), ["root", "early"]);
        assert_eq!(t.anomalies.len(), 1);
        let Anomaly::EffectBeforeCause { cause, effect, .. } = &t.anomalies[0] else {
            panic!("{:?}", t.anomalies);
        };
        assert_eq!((cause.as_str(), effect.as_str()), ("root", "early"));
        // The same edge seen from above.
        let t = run(&g, "root", TrailLimits::default()).unwrap();
        assert_eq!(shape(&t.tree), "root(early(later))");
        assert_eq!(t.anomalies.len(), 1);
    }

    #[test]
    fn depth_is_bounded_both_ways_and_says_where() {
        let mut g = Graph::default();
        g.add("n0", None, 0);
        for i in 1..10 {
            g.add(&format!("n{i}"), Some(&format!("n{}", i - 1)), i);
        }
        let limits = TrailLimits {
            max_depth: 3,
            ..TrailLimits::default()
        };
        let t = run(&g, "n5", limits).unwrap();
        assert_eq!(ids(&t.ancestors), ["n2", "n3", "n4"]);
        assert_eq!(shape(&t.tree), "n5(n6(n7(n8!depth)))");
        assert!(t.cuts.contains(&Cut::Ancestors {
            at: "n2".into(),
            max_depth: 3
        }));
        assert!(t.cuts.contains(&Cut::Depth {
            at: "n8".into(),
            max_depth: 3
        }));
        // A leaf at the limit hides nothing: no cut.
        let t = run(&g, "n6", limits).unwrap();
        assert_eq!(shape(&t.tree), "n6(n7(n8(n9)))");
        assert!(!t.cuts.iter().any(|c| matches!(c, Cut::Depth { .. })));
    }

    #[test]
    fn fan_out_and_node_count_are_bounded() {
        let mut g = Graph::default();
        g.add("p", None, 0);
        for i in 0..5 {
            g.add(&format!("c{i}"), Some("p"), 1);
            g.add(&format!("g{i}"), Some(&format!("c{i}")), 2);
        }
        let fan = TrailLimits {
            max_fan_out: 2,
            ..TrailLimits::default()
        };
        let t = run(&g, "p", fan).unwrap();
        assert_eq!(shape(&t.tree), "p+(c0(g0), c1(g1))");
        assert_eq!(
            t.cuts,
            [Cut::FanOut {
                at: "p".into(),
                shown: 2
            }]
        );

        let nodes = TrailLimits {
            max_nodes: 4,
            ..TrailLimits::default()
        };
        let t = run(&g, "p", nodes).unwrap();
        assert_eq!(shape(&t.tree), "p+(c0!nodes, c1!nodes, c2!nodes)");
        assert!(t.cuts.contains(&Cut::Nodes { max_nodes: 4 }));
    }

    #[test]
    fn a_record_under_two_parents_is_shown_once() {
        // Children as the index returns them: a stale edge from a re-used id.
        struct Stale(Graph);
        impl CausalGraph for Stale {
            type Error = Infallible;
            async fn node(&self, id: &str) -> Result<Option<CausalRecord>, Infallible> {
                self.0.node(id).await
            }
            async fn children(
                &self,
                parent: &str,
                limit: usize,
            ) -> Result<Bounded<CausalRecord>, Infallible> {
                let mut b = self.0.children(parent, limit).await?;
                if parent == "b" {
                    b.items.extend(self.0.node("x").await?);
                }
                Ok(b)
            }
        }
        let mut g = Graph::default();
        g.add("r", None, 0)
            .add("a", Some("r"), 1)
            .add("b", Some("r"), 1)
            .add("x", Some("a"), 2);
        let t = futures::executor::block_on(walk(&Stale(g), "r", TrailLimits::default()))
            .unwrap()
            .unwrap();
        assert_eq!(shape(&t.tree), "r(a(x), b(x!repeated))");
        assert!(t.anomalies.is_empty());
    }
}
