//! What a chaos run reports: the ledger as a table, the faults with their recovery times and
//! stalls, peak lag and memory per service, and the same as JSON (`report.json`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::faults::{Injected, Kind};
use super::fleet::{Exit, SERVICES};
use super::ledger::Row;
use super::{Sample, Settings};

/// A run's outcome.
pub struct Report {
    /// The run's name (its topics' prefix, its groups' prefix, its keyspace).
    pub run: String,
    /// Where its configuration, logs and report are.
    pub dir: PathBuf,
    /// What was asked.
    pub settings: Settings,
    /// Inputs by family and fate.
    pub inputs: BTreeMap<String, usize>,
    /// Inputs Kafka never acknowledged (the run is then inconclusive, and fails).
    pub undelivered: usize,
    /// The ledger.
    pub rows: Vec<Row>,
    /// The faults, as injected.
    pub faults: Vec<Injected>,
    /// Every group's lag, each second.
    pub samples: Vec<Sample>,
    /// Every slot: name, service, starts, peak RSS (KiB).
    pub slots: Vec<(String, &'static str, u32, u64)>,
    /// Processes that exited on their own (and were started again).
    pub exits: Vec<Exit>,
    /// When every group had committed everything, seconds into production (`None`: never).
    pub caught_up_s: Option<f64>,
    /// Transactions aborted while idle after catch-up (a loop spinning if not 0).
    pub idle_aborts: u64,
    /// Transactions committed while idle after catch-up.
    pub idle_commits: u64,
    /// `auditflow_consumer_committed_lag` per service after catch-up, as the services report it.
    pub committed_lag: BTreeMap<String, u64>,
}

impl Report {
    /// The lag bound recovery is measured against: five seconds of input, at least 100.
    pub fn lag_bound(&self) -> u64 {
        (u64::from(self.settings.rate) * 5).max(100)
    }

    /// Seconds from each fault's lifting until the total lag was back under [`lag_bound`]
    /// (`None`: not within the run).
    ///
    /// [`lag_bound`]: Self::lag_bound
    pub fn recovery(&self, fault: &Injected) -> Option<f64> {
        let bound = self.lag_bound();
        self.samples
            .iter()
            .filter(|(t, _)| *t >= fault.lifted_s)
            .find(|(_, lag)| {
                lag.as_ref()
                    .is_some_and(|l| l.values().sum::<u64>() <= bound)
            })
            .map(|(t, _)| t - fault.lifted_s)
    }

    /// Each service's highest lag in any sample.
    pub fn peak_lag(&self) -> BTreeMap<&'static str, u64> {
        let mut out: BTreeMap<&'static str, u64> = SERVICES.iter().map(|s| (*s, 0)).collect();
        for (_, lag) in &self.samples {
            for (service, v) in lag.iter().flatten() {
                let e = out.entry(service).or_insert(0);
                *e = (*e).max(*v);
            }
        }
        out
    }

    /// Each service's highest peak RSS over its instances, MiB.
    pub fn peak_rss_mib(&self) -> BTreeMap<&'static str, f64> {
        let mut out: BTreeMap<&'static str, f64> = BTreeMap::new();
        for (_, service, _, kib) in &self.slots {
            let e = out.entry(service).or_insert(0.0);
            *e = e.max(*kib as f64 / 1024.0);
        }
        out
    }

    /// The stalls measured after each `kill` of a transactional instance: `(count, median,
    /// max)` seconds, `None` when none was measured.
    pub fn stalls(&self) -> Option<(usize, f64, f64)> {
        let mut v: Vec<f64> = self.faults.iter().filter_map(|f| f.stall_s).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        Some((v.len(), v[v.len() / 2], v[v.len() - 1]))
    }

    /// Why the run failed, one line each; empty when it passed.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.undelivered > 0 {
            out.push(format!(
                "{} inputs were never acknowledged by Kafka",
                self.undelivered
            ));
        }
        if self.caught_up_s.is_none() {
            out.push("the groups never caught up after the faults".into());
        }
        for r in self
            .rows
            .iter()
            .filter(|r| !r.ok() || r.found != r.expected)
        {
            out.push(format!(
                "{}: expected {}, found {}, lost {}, duplicated {}, unexpected {}, wrong {}",
                r.what, r.expected, r.found, r.lost, r.duplicated, r.unexpected, r.wrong
            ));
        }
        for f in self.faults.iter().filter(|f| f.error.is_some()) {
            out.push(format!(
                "{} fault at {:.0} s: {}",
                f.kind.name(),
                f.at_s,
                f.error.as_deref().unwrap_or_default()
            ));
        }
        if self.idle_aborts > 0 {
            out.push(format!(
                "{} transactions aborted while idle after catch-up",
                self.idle_aborts
            ));
        }
        out
    }

    /// Whether nothing was lost, duplicated or left unexplained.
    pub fn passed(&self) -> bool {
        self.problems().is_empty()
    }

    /// Faults of `kind` injected.
    pub fn injected(&self, kind: Kind) -> usize {
        self.faults
            .iter()
            .filter(|f| f.kind == kind && f.error.is_none())
            .count()
    }

    /// The report as text.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let st = &self.settings;
        let _ = writeln!(
            s,
            "chaos run {} (seed {}, {} s at {}/s, {} schedule, {} transactional ids)",
            self.run,
            st.seed,
            st.duration.as_secs(),
            st.rate,
            if st.short { "short" } else { "long" },
            if st.stable_ids { "stable" } else { "fresh" }
        );
        let _ = writeln!(s, "inputs: {}", kv(&self.inputs));
        let _ = writeln!(
            s,
            "\n{:<48} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}",
            "ledger", "expected", "found", "lost", "dup", "unexp", "wrong"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<48} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6}{}",
                r.what,
                r.expected,
                r.found,
                r.lost,
                r.duplicated,
                r.unexpected,
                r.wrong,
                if r.examples.is_empty() || (r.ok() && r.found == r.expected) {
                    String::new()
                } else {
                    format!("  e.g. {}", r.examples.join("; "))
                }
            );
        }
        let _ = writeln!(
            s,
            "\n{:<9} {:<34} {:>7} {:>8} {:>10} {:>8}",
            "fault", "target", "at s", "lifted s", "recovery s", "stall s"
        );
        for f in &self.faults {
            let _ = writeln!(
                s,
                "{:<9} {:<34} {:>7.1} {:>8.1} {:>10} {:>8}{}",
                f.kind.name(),
                f.target,
                f.at_s,
                f.lifted_s,
                opt(self.recovery(f)),
                opt(f.stall_s),
                f.error
                    .as_ref()
                    .map(|e| format!("  error: {e}"))
                    .unwrap_or_default()
            );
        }
        let _ = writeln!(
            s,
            "\nrecovery: until the total committed lag is at most {} records",
            self.lag_bound()
        );
        if let Some((n, median, max)) = self.stalls() {
            let _ = writeln!(
                s,
                "stall after kill -9 of a transactional instance: {n} measured, median {median:.1} s, max {max:.1} s"
            );
        }
        let _ = writeln!(s, "peak committed lag: {}", kv(&self.peak_lag()));
        let rss: BTreeMap<&str, String> = self
            .peak_rss_mib()
            .into_iter()
            .map(|(k, v)| (k, format!("{v:.0} MiB")))
            .collect();
        let _ = writeln!(s, "peak RSS per instance: {}", kv(&rss));
        let _ = writeln!(
            s,
            "caught up at {} s; idle after: {} transactions committed, {} aborted; \
             auditflow_consumer_committed_lag after: {}",
            opt(self.caught_up_s),
            self.idle_commits,
            self.idle_aborts,
            kv(&self.committed_lag)
        );
        for e in &self.exits {
            let _ = writeln!(
                s,
                "exited on its own: {} at {:.0} s ({})",
                e.slot, e.at_s, e.status
            );
        }
        let problems = self.problems();
        if problems.is_empty() {
            let _ = writeln!(s, "\nPASSED: nothing lost, duplicated or unexplained");
        } else {
            let _ = writeln!(s, "\nFAILED:");
            for p in problems {
                let _ = writeln!(s, "  {p}");
            }
        }
        let _ = writeln!(s, "files: {}", self.dir.display());
        s
    }

    /// The report as JSON.
    pub fn json(&self) -> Value {
        let st = &self.settings;
        json!({
            "run": self.run,
            "passed": self.passed(),
            "problems": self.problems(),
            "settings": {
                "seconds": st.duration.as_secs(),
                "rate": st.rate,
                "seed": st.seed,
                "schedule": if st.short { "short" } else { "long" },
                "stable_transactional_ids": st.stable_ids,
                "instances": SERVICES.iter().zip(st.instances).map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            },
            "inputs": self.inputs,
            "undelivered": self.undelivered,
            "ledger": self.rows.iter().map(|r| json!({
                "what": r.what, "expected": r.expected, "found": r.found, "lost": r.lost,
                "duplicated": r.duplicated, "unexpected": r.unexpected, "wrong": r.wrong,
                "examples": r.examples,
            })).collect::<Vec<_>>(),
            "faults": self.faults.iter().map(|f| json!({
                "kind": f.kind.name(), "target": f.target, "at_s": f.at_s, "lifted_s": f.lifted_s,
                "recovery_s": self.recovery(f), "stall_s": f.stall_s, "error": f.error,
            })).collect::<Vec<_>>(),
            "lag_bound": self.lag_bound(),
            "stalls": self.stalls().map(|(n, median, max)| json!({"measured": n, "median_s": median, "max_s": max})),
            "peak_committed_lag": self.peak_lag(),
            "peak_rss_mib": self.peak_rss_mib(),
            "instances": self.slots.iter().map(|(name, _, starts, kib)| json!({
                "slot": name, "starts": starts, "peak_rss_mib": *kib as f64 / 1024.0,
            })).collect::<Vec<_>>(),
            "exits": self.exits.iter().map(|e| json!({"slot": e.slot, "at_s": e.at_s, "status": e.status})).collect::<Vec<_>>(),
            "caught_up_s": self.caught_up_s,
            "idle_transactions": {"committed": self.idle_commits, "aborted": self.idle_aborts},
            "committed_lag_metric_after": self.committed_lag,
            "lag_samples": self.samples.iter().map(|(t, lag)| json!([t, lag])).collect::<Vec<_>>(),
        })
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.1}"))
}

fn kv<K: std::fmt::Display, V: std::fmt::Display>(m: &BTreeMap<K, V>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}
