//! What "nothing lost" needs from the cluster, and a warning at start when it is not there.
//!
//! The sink commits a record's Kafka offset once the database has acknowledged its rows
//! (docs/operations.md), so every acknowledged write must survive a crash. A write is acknowledged
//! by as many replicas as `[store] consistency` asks for; each replica makes it durable in its
//! commit log, which — with `commitlog_sync: periodic`, Cassandra's and ScyllaDB's default — is
//! synced to disk only every `commitlog_sync_period` (10 s): a replica killed in between loses the
//! writes it acknowledged since its last sync. So an acknowledged write survives a node crash when
//! either
//! - at least two replicas acknowledged it (replication factor 3 with `quorum` or
//!   `local_quorum`, the production setting: a second replica holds it, and repair or hinted
//!   handoff bring it back to the first), or
//! - the commit log syncs before acknowledging (`commitlog_sync: batch`, or `group` as the
//!   local stack runs it), which one node alone then guarantees.
//!
//! [`Store::durability`] reads the keyspace's replication (`system_schema.keyspaces`, which
//! both servers have) and, where the server exposes it, the commit-log mode (Cassandra 5's
//! `system_views.settings`, ScyllaDB's `system.config`; an unknown mode is said so), and
//! [`Durability::warning`] says what is missing. Services that store warn at start.

use std::collections::HashMap;

use scylla::statement::Consistency;

use crate::Store;
use crate::error::Result;

/// What the cluster gives an acknowledged write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durability {
    /// The smallest replication factor of a data centre holding the keyspace.
    pub replication_factor: u32,
    /// Replicas that acknowledge a write at the configured consistency (0 for `any`).
    pub acknowledging_replicas: u32,
    /// `commitlog_sync` as the server reports it; `None` when it does not say.
    pub commitlog_sync: Option<String>,
}

impl Durability {
    /// Why an acknowledged write may be lost when one node crashes; `None` when it may not.
    pub fn warning(&self) -> Option<String> {
        if self.acknowledging_replicas >= 2 {
            return None;
        }
        let copies = match self.acknowledging_replicas {
            0 => "no replica needs to have written it (consistency `any`)".to_owned(),
            _ => format!(
                "one replica acknowledges it (replication factor {}, consistency one)",
                self.replication_factor
            ),
        };
        let sync = match self.commitlog_sync.as_deref() {
            Some("batch" | "group") if self.acknowledging_replicas == 1 => return None,
            Some(mode) => format!("that replica's commit log syncs `{mode}`ly"),
            None => "the server does not say how its commit log syncs".to_owned(),
        };
        Some(format!(
            "an acknowledged write can be lost when a node crashes: {copies}, and {sync}. For \
             nothing lost, use replication factor 3 with [store] consistency = local_quorum, or \
             commitlog_sync: batch or group on every node"
        ))
    }
}

/// Replicas a write at `consistency` waits for, with `rf` replicas (per data centre).
pub(crate) fn acknowledging(consistency: Consistency, rf: u32) -> u32 {
    let quorum = rf / 2 + 1;
    match consistency {
        Consistency::Any => 0,
        Consistency::One | Consistency::LocalOne => 1.min(rf),
        Consistency::Two => 2.min(rf),
        Consistency::Three => 3.min(rf),
        Consistency::Quorum | Consistency::LocalQuorum | Consistency::EachQuorum => quorum,
        Consistency::All => rf,
        // Serial levels are for lightweight transactions, which `consistency` never names.
        _ => 1.min(rf),
    }
}

/// The smallest per-data-centre replication factor of a replication map as the server lists
/// it (`{'class': '...SimpleStrategy', 'replication_factor': '3'}` or one entry per DC).
pub(crate) fn replication_factor(map: &HashMap<String, String>) -> u32 {
    map.iter()
        .filter(|(k, _)| k.as_str() != "class")
        .filter_map(|(_, v)| v.parse::<u32>().ok())
        .min()
        .unwrap_or(0)
}

impl Store {
    /// What the cluster gives this store's acknowledged writes (see the module doc).
    pub async fn durability(&self) -> Result<Durability> {
        let replication = self
            .first_row_unprepared::<(HashMap<String, String>,)>(
                "read keyspace replication",
                "SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?",
                (self.keyspace.as_str(),),
            )
            .await?
            .map(|(map,)| map)
            .unwrap_or_default();
        let rf = replication_factor(&replication);
        let mut commitlog_sync = None;
        for cql in [
            "SELECT value FROM system_views.settings WHERE name = 'commitlog_sync'",
            "SELECT value FROM system.config WHERE name = 'commitlog_sync'",
        ] {
            // Either table may not exist on this server: that is not an error, only unknown.
            if let Ok(Some((Some(mode),))) = self
                .first_row_unprepared::<(Option<String>,)>("read commit-log mode", cql, ())
                .await
            {
                commitlog_sync = Some(mode.trim_matches('"').to_ascii_lowercase());
                break;
            }
        }
        Ok(Durability {
            replication_factor: rf,
            acknowledging_replicas: acknowledging(self.consistency, rf),
            commitlog_sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn durability(rf: u32, consistency: Consistency, sync: Option<&str>) -> Durability {
        Durability {
            replication_factor: rf,
            acknowledging_replicas: acknowledging(consistency, rf),
            commitlog_sync: sync.map(str::to_owned),
        }
    }

    #[test]
    fn two_acknowledging_replicas_or_a_synced_commit_log_lose_nothing() {
        for ok in [
            durability(3, Consistency::LocalQuorum, Some("periodic")),
            durability(3, Consistency::Quorum, None),
            durability(5, Consistency::All, Some("periodic")),
            durability(1, Consistency::LocalQuorum, Some("group")),
            durability(1, Consistency::One, Some("batch")),
            durability(3, Consistency::One, Some("group")),
        ] {
            assert_eq!(ok.warning(), None, "{ok:?}");
        }
    }

    #[test]
    fn one_replica_with_a_periodic_or_unknown_commit_log_is_warned_about() {
        for (weak, says) in [
            (
                durability(1, Consistency::LocalQuorum, Some("periodic")),
                "periodic",
            ),
            (durability(3, Consistency::One, Some("periodic")), "one"),
            (durability(1, Consistency::One, None), "does not say"),
            (durability(3, Consistency::Any, Some("group")), "any"),
        ] {
            let warning = weak.warning().unwrap_or_else(|| panic!("{weak:?}"));
            assert!(warning.contains(says), "{warning}");
            assert!(warning.contains("local_quorum"), "says the fix: {warning}");
        }
        // RF 2 at quorum needs both replicas: two copies.
        assert_eq!(acknowledging(Consistency::Quorum, 2), 2);
        assert_eq!(acknowledging(Consistency::LocalQuorum, 3), 2);
    }

    #[test]
    fn the_replication_factor_is_the_smallest_data_centre() {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        let simple = map(&[
            ("class", "org.apache.cassandra.locator.SimpleStrategy"),
            ("replication_factor", "1"),
        ]);
        assert_eq!(replication_factor(&simple), 1);
        let nts = map(&[
            (
                "class",
                "org.apache.cassandra.locator.NetworkTopologyStrategy",
            ),
            ("dc1", "3"),
            ("dc2", "2"),
        ]);
        assert_eq!(replication_factor(&nts), 2);
    }
}
