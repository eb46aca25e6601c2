//! Threat detection (docs/security-rules.md): the security monitor's engine, pure and synchronous.
//!
//! Feed it [`Observation`]s (the classifier's `audit.security.event` and `audit.user.action`
//! records) with [`Detector::observe`]; it returns the [`Output`]s to write: `security.alert`s,
//! `security.action`s and blocklist upserts and tombstones. The `auditflow detect` command and
//! the security-monitor service both run this engine; neither adds detection logic.
//!
//! # Time and windows
//! Event time is the record's `time`. The window of an event at t holds the events of the same
//! key with time in (t − window, t] (10 min by default), exactly: each key keeps its recent
//! timestamps sorted, never bucketed. Rules are keyed: brute_force and credential_stuffing by
//! source ip, the others by user id.
//!
//! # Out-of-order events
//! Each key has its own clock, the newest event time it has seen (keys are partitioned, so one
//! slow partition does not make another's events late). An event up to `grace_secs` (2 min)
//! behind its key's newest event is *late*: it is inserted where it belongs and judged at the
//! worst of the windows it now belongs to — so a burst whose events arrive shuffled alerts as
//! the sorted burst would (the alert's window may then end after the late event). An event
//! further behind is *too late* for that key: the rules keyed there do not judge it, and it is
//! counted in [`DetectStats::too_late`].
//!
//! # Events dated in the future
//! Event times are what producers claim. Detection's clock never runs ahead of the wall clock
//! by more than `max_clock_skew_secs` (5 min): an event dated further ahead of when it was
//! received ([`Observation::received`], itself capped at the caller's wall clock) is
//! *future-dated* ([`DetectStats::future_dated`]). It is still judged — an attacker who dates
//! every failure 9999-01-01 is counted like one who does not — but *at the detector's clock*
//! (the newest legitimate event time of the partition; when it was received if there is none
//! yet): it moves no clock, lifts no block and evicts no key or window, and no key's later
//! events become too late because of it. Its alert, if any, is dated at that judged time; a
//! block it raises lasts `block_duration_secs` from when it was received (or the judged time,
//! if later), so a partition whose clock is stale cannot make the block expire at once.
//!
//! # Source ips
//! Ips are compared in canonical form ([`ip`]): IPv4-mapped IPv6 is IPv4, IPv6 is written as
//! RFC 5952 says, and the ip-keyed rules key an IPv6 source by its /64. Text that is not an
//! address is no source ip ([`DetectStats::unparsable_ips`]). What `block_ip` blocks (its `ip`,
//! the blocklist key) is the source key: an IPv4 address, or an IPv6 /64 as a CIDR.
//!
//! # Threat level, episodes and deduplication
//! Every applicable rule scores the event; its threat level is the highest score (ties go to
//! the rule listed first in [`Rule::ALL`]). A medium, high or critical event raises one alert,
//! for that rule — unless the same (rule, key, level) already alerted in the key's current
//! *episode*. An episode is a run of a key's events (for one rule family) with each within the
//! window of the previous one; it ends when the key is quiet for a whole window, i.e. when the
//! key's window becomes empty. So 21 failures from one ip yield exactly one medium (6th), one
//! high (11th) and one critical (21st) alert; a second burst after ten quiet minutes alerts
//! again.
//!
//! # Actions and the blocklist
//! A critical alert also emits `block_ip` (when the ip is known; `reason` = the rule, expiring
//! `block_duration_secs` after the event) and `disable_account` (when the user is known, i.e.
//! present and not `unknown`), and upserts the ip on the blocklist. A block's expiry is an
//! absolute time: when the engine's clock — the newest event time it has seen from any key —
//! passes it, the ip's tombstone goes out; [`Detector::advance_to`] moves that clock without an
//! event. A service also calls [`Detector::lift_expired`] with the wall clock, so a block on a
//! quiet partition is lifted on time; that lifts blocks only and leaves the event-time clock,
//! windows and eviction alone (a backlog replayed after downtime is still judged by event time).
//! One detector knows its own blocks only; a service running several settles their blocklist
//! records against each other and the blocklist topic ([`blocklist`]).
//!
//! # Ids and replay
//! Alert ids are a keyed function ([`IdSecret`], HMAC-SHA256) of (rule, key, level, window
//! start, window end), action ids of (alert id, action): a replay of the same input under the
//! same secret reproduces them, and nobody without the secret can recover an ip or a user id
//! from one. After a restart the service replays
//! the events it had already processed in [`Mode::Replay`]: the engine rebuilds its windows,
//! episodes and blocks exactly as in [`Mode::Live`] but returns no outputs, so nothing already
//! emitted is emitted again. State older than the replayed span (e.g. an episode that began
//! before it) is not rebuilt; the worst case is a repeated alert for new evidence, never for
//! the same evidence.
//!
//! # Memory
//! Bounded whatever the input: each rule family tracks at most `max_keys` keys (the stalest
//! is evicted first; keys idle for `idle_key_secs` of event time are dropped), each key at most
//! `max_events_per_key` events (counts saturate there), each user's baseline a few ips and
//! agents, and at most `max_keys` blocks. Bytes are bounded too, since keys and ids are
//! attacker-chosen text: user ids and agents longer than `max_key_bytes` are kept as a prefix
//! and a hash, ips as parsed addresses, and when windows, baselines and blocks
//! together weigh more than `max_state_bytes` the stalest keys of any family are evicted first
//! (counted with the others in [`Detector::evicted_keys`]).

pub mod blocklist;
mod blocks;
mod episode;
mod geo;
mod ids;
pub mod ip;
mod keyed;
mod level;
mod observation;
mod output;
mod params;
mod rules;
mod time;
mod timeline;

#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};

pub use ids::IdSecret;
pub use level::{Rule, ThreatLevel};
pub use observation::{
    Geo, InputKind, Observation, SECURITY_EVENT_TYPE, SecurityEventData, Signal, USER_ACTION_TYPE,
    UserActionData,
};
pub use output::{
    ACTION_TYPE, ALERT_TYPE, Action, ActionKind, Alert, BLOCKLIST_TYPE, BlockEntry, Output,
    OutputStream, SOURCE,
};

use crate::config::SecuritySettings;
use blocks::Blocks;
use episode::Episode;
use params::Params;
use rules::Finding;
use rules::failures::FailedLogins;
use rules::privilege::Grants;
use rules::travel::Logins;
use rules::unusual::Baselines;
use time::later;

/// Errors of the detection engine. (Bad input is not an error of the engine: building an
/// [`Observation`] rejects it with a [`Rejection`](crate::Rejection) for the dead-letter topic.)
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DetectError {
    /// The `[security]` settings contradict each other.
    #[error("invalid [security] settings: {0}")]
    InvalidSettings(String),
}

/// Whether outputs are wanted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Judge and return outputs.
    Live,
    /// Rebuild state from events already judged before: update everything, return nothing.
    Replay,
}

/// Counters of what the engine did; they only grow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetectStats {
    /// Observations given to the engine, in either mode.
    pub observed: u64,
    /// ... of them in replay mode.
    pub replayed: u64,
    /// Observations further behind a key than the grace period (not judged by its rules).
    pub too_late: u64,
    /// Observations dated further ahead than `max_clock_skew_secs`: judged at the detector's
    /// clock, which they did not move.
    pub future_dated: u64,
    /// Observations naming an ip that is not an ip address (no source ip, so never a key).
    pub unparsable_ips: u64,
    /// Alerts made (live and replayed).
    pub alerts: u64,
    /// Actions made (live and replayed).
    pub actions: u64,
    /// Blocklist upserts made, before a service settles them against other detectors.
    pub blocks: u64,
    /// Blocklist tombstones made, before settling.
    pub unblocks: u64,
    /// Outputs rebuilt in replay mode and not returned.
    pub suppressed: u64,
}

/// The detection engine: its state is the windows of the keys it has seen. Cloning a fresh one
/// is the cheap way to get another with the same (already validated) settings.
#[derive(Debug, Clone)]
pub struct Detector {
    params: Params,
    secret: IdSecret,
    failures: FailedLogins,
    logins: Logins,
    grants: Grants,
    baselines: Baselines,
    blocks: Blocks,
    /// The newest event time seen from any key.
    clock: Option<DateTime<Utc>>,
    stats: DetectStats,
}

impl Detector {
    /// A detector deriving its ids under `secret` (every instance must use the same one).
    pub fn new(settings: &SecuritySettings, secret: IdSecret) -> Result<Detector, DetectError> {
        let params = Params::new(settings)?;
        Ok(Detector {
            secret,
            failures: FailedLogins::new(&params),
            logins: Logins::new(&params),
            grants: Grants::new(&params),
            baselines: Baselines::new(&params),
            blocks: Blocks::new(params.max_keys),
            clock: None,
            stats: DetectStats::default(),
            params,
        })
    }

    /// Judges one event; returns the outputs to write, in order (empty in replay mode).
    /// `now` is the caller's wall clock: with [`Observation::received`] it bounds how far
    /// ahead an event may be dated and still move the detector's clock.
    pub fn observe(&mut self, obs: &Observation, mode: Mode, now: DateTime<Utc>) -> Vec<Output> {
        self.stats.observed += 1;
        if mode == Mode::Replay {
            self.stats.replayed += 1;
        }
        if obs.unparsable_ip {
            self.stats.unparsable_ips += 1;
        }
        let mut out = Vec::new();
        let received = obs.received.min(now);
        let rescheduled;
        let (obs, block_from) = if obs.time > later(received, self.params.max_clock_skew) {
            self.stats.future_dated += 1;
            // Judged at the detector's clock: never ahead of a legitimate event of the
            // partition, so no key's later events become too late. Without a clock yet, at
            // when it was received. A block it raises lasts from when it was received, so a
            // stale clock (a quiet partition) cannot make the block expire at once.
            let at = self.clock.unwrap_or(received);
            rescheduled = Observation {
                time: at,
                ..obs.clone()
            };
            (&rescheduled, at.max(received))
        } else {
            self.advance(obs.time, &mut out);
            (obs, obs.time)
        };
        if let Some(top) = self.judge(obs) {
            self.raise(obs, top, block_from, &mut out);
        }
        self.enforce_budget(&mut out);
        self.deliver(out, mode)
    }

    /// Moves the engine's clock to `now` (if later) without an event: blocks that expired
    /// before it are lifted (their tombstones returned) and idle keys evicted.
    pub fn advance_to(&mut self, now: DateTime<Utc>, mode: Mode) -> Vec<Output> {
        let mut out = Vec::new();
        self.advance(now, &mut out);
        self.deliver(out, mode)
    }

    /// Lifts the blocks that expired before `now` — the wall clock, not event time — and
    /// returns their tombstones. Unlike [`Detector::advance_to`] it moves nothing else: the
    /// event-time clock, the windows and idle eviction still follow the events alone.
    pub fn lift_expired(&mut self, now: DateTime<Utc>) -> Vec<Output> {
        let out = self.lifted(now).collect();
        self.deliver(out, Mode::Live)
    }

    /// The block this detector holds on `ip` (a source key), if any: the entry that set it.
    pub fn block_on(&self, ip: &str) -> Option<&BlockEntry> {
        self.blocks.get(ip)
    }

    /// Every block this detector holds.
    pub fn blocks(&self) -> impl Iterator<Item = &BlockEntry> {
        self.blocks.iter()
    }

    /// What the engine has done so far; a service reports the growth as its metrics.
    pub fn stats(&self) -> &DetectStats {
        &self.stats
    }

    /// Keys evicted (idle or at the cap) over all rule families, since start.
    pub fn evicted_keys(&self) -> u64 {
        self.failures.keys.evicted()
            + self.logins.keys.evicted()
            + self.grants.keys.evicted()
            + self.baselines.keys.evicted()
    }

    /// Keys tracked now over all rule families, and blocks held.
    pub fn tracked(&self) -> (usize, usize) {
        let keys = self.failures.keys.len()
            + self.logins.keys.len()
            + self.grants.keys.len()
            + self.baselines.keys.len();
        (keys, self.blocks.len())
    }

    /// What the windows, baselines and blocks weigh now, in bytes (at most `max_state_bytes`
    /// after every event).
    pub fn state_bytes(&self) -> usize {
        self.failures.keys.bytes()
            + self.logins.keys.bytes()
            + self.grants.keys.bytes()
            + self.baselines.keys.bytes()
            + self.blocks.bytes()
    }

    /// Evicts the stalest keys of any family until the state fits `max_state_bytes`; should
    /// blocks alone not fit, lifts the soonest-expiring (their tombstones join `out`).
    fn enforce_budget(&mut self, out: &mut Vec<Output>) {
        while self.state_bytes() > self.params.max_state_bytes {
            let stalest = [
                self.failures.keys.stalest(),
                self.logins.keys.stalest(),
                self.grants.keys.stalest(),
                self.baselines.keys.stalest(),
            ];
            let family = stalest
                .iter()
                .enumerate()
                .filter_map(|(i, t)| t.map(|t| (t, i)))
                .min()
                .map(|(_, i)| i);
            match family {
                Some(0) => self.failures.keys.evict_stalest(),
                Some(1) => self.logins.keys.evict_stalest(),
                Some(2) => self.grants.keys.evict_stalest(),
                Some(_) => self.baselines.keys.evict_stalest(),
                None => match self.blocks.lift_soonest() {
                    Some(entry) => {
                        out.push(unblock(entry));
                        true
                    }
                    None => false,
                },
            };
        }
    }

    fn advance(&mut self, now: DateTime<Utc>, out: &mut Vec<Output>) {
        if self.clock.is_some_and(|clock| clock >= now) {
            return;
        }
        self.clock = Some(now);
        out.extend(self.lifted(now));
        self.failures.keys.evict_idle(now);
        self.logins.keys.evict_idle(now);
        self.grants.keys.evict_idle(now);
        self.baselines.keys.evict_idle(now);
    }

    /// Lifts the blocks expired before `now`: their tombstones.
    fn lifted(&mut self, now: DateTime<Utc>) -> impl Iterator<Item = Output> + use<> {
        self.blocks.expire(now).into_iter().map(unblock)
    }

    /// Every applicable rule's finding; the highest score wins, ties to the earlier rule.
    fn judge(&mut self, obs: &Observation) -> Option<Finding> {
        let p = &self.params;
        let mut judgements = Vec::with_capacity(3);
        match &obs.signal {
            Signal::SecurityEvent(event) => {
                // A failure without a source ip has no key to count it under.
                if event.event_type == "failed_login"
                    && let Some(ip) = event.source_ip
                {
                    judgements.push(self.failures.observe(obs, ip, &ip::source_key(ip), p));
                }
            }
            Signal::UserAction(action) => {
                if action.action == "login_attempt"
                    && action.outcome == "success"
                    && observation::is_known_user(&action.user_id)
                    && let Some(geo) = action.geo
                {
                    judgements.push(self.logins.observe(obs, &action.user_id, geo, p));
                }
                if Grants::applies(action, p) {
                    judgements.push(self.grants.observe(obs, action, p));
                }
                if Baselines::applies(action) {
                    judgements.push(self.baselines.observe(obs, action, p));
                }
            }
        }
        // Whatever a family changed is weighed again, for the byte budget.
        self.failures.keys.reweigh_touched();
        self.logins.keys.reweigh_touched();
        self.grants.keys.reweigh_touched();
        self.baselines.keys.reweigh_touched();
        if judgements.iter().any(Option::is_none) {
            self.stats.too_late += 1;
        }
        judgements
            .into_iter()
            .flatten()
            .flatten()
            .reduce(|best, f| if f.score > best.score { f } else { best })
    }

    /// Alerts (once per rule, key, level and episode) and, when critical, acts; a block lasts
    /// `block_duration` from `block_from`.
    fn raise(
        &mut self,
        obs: &Observation,
        top: Finding,
        block_from: DateTime<Utc>,
        out: &mut Vec<Output>,
    ) {
        let level = ThreatLevel::from_score(top.score);
        if !level.raises_alert() {
            return;
        }
        let episode: Option<&mut Episode> = match top.rule {
            Rule::BruteForce | Rule::CredentialStuffing => self.failures.episode(&top.key),
            Rule::ImpossibleTravel => self.logins.episode(&top.key),
            Rule::PrivilegeEscalation => self.grants.episode(&top.key),
            Rule::UnusualAccess => self.baselines.episode(&top.key),
        };
        // The key was touched just now, so its episode exists; if not, alerting is safer.
        if !episode.is_none_or(|e| e.try_mark(top.rule, level)) {
            return;
        }
        // The ip-keyed rules show the source they counted (an IPv6 /64); the others the
        // raising event's address.
        let source_ip = top.source.map(|ip| match top.rule {
            Rule::BruteForce | Rule::CredentialStuffing => ip::source_key(ip),
            _ => ip.to_string(),
        });
        let alert = Alert {
            id: output::alert_id(
                &self.secret,
                top.rule,
                &top.key,
                level,
                (top.window_start, top.window_end),
            ),
            rule: top.rule,
            level,
            score: top.score,
            key: top.key,
            user_id: top.user_id,
            source_ip,
            count: top.count,
            window_start: top.window_start,
            window_end: top.window_end,
            evidence: top.evidence.iter().map(|id| id.to_string()).collect(),
            time: obs.time,
            causation_id: obs.id.to_string(),
            correlation_id: obs.correlation_id.clone(),
        };
        let critical = level == ThreatLevel::Critical;
        // What a block names: the source key, so an IPv6 source is blocked by its /64.
        let (ip, user) = (top.source.map(ip::source_key), alert.user_id.clone());
        let secret = &self.secret;
        let caused = |what: &str, kind| Action {
            id: output::caused_id(secret, &alert.id, what),
            kind,
            time: alert.time,
            causation_id: alert.id.clone(),
            correlation_id: alert.correlation_id.clone(),
        };
        let mut follow_ups = Vec::new();
        if critical && let Some(ip) = ip {
            let reason = alert.rule.as_str().to_owned();
            let (entry, lifted) = self.blocks.block(BlockEntry {
                id: output::caused_id(secret, &alert.id, "blocklist"),
                ip,
                reason: reason.clone(),
                expires_at: later(block_from, self.params.block_duration),
                time: alert.time,
                causation_id: alert.id.clone(),
                correlation_id: alert.correlation_id.clone(),
            });
            let kind = ActionKind::BlockIp {
                ip: entry.ip.clone(),
                reason,
                expires_at: entry.expires_at,
            };
            follow_ups.extend(lifted.into_iter().map(unblock));
            follow_ups.push(Output::Action(caused("block_ip", kind)));
            // The blocklist upsert goes after the actions: the action is the decision, the
            // blocklist its materialised state.
            follow_ups.push(Output::Block(entry));
        }
        if critical && let Some(user_id) = user.filter(|u| observation::is_known_user(u)) {
            let action = Output::Action(caused(
                "disable_account",
                ActionKind::DisableAccount { user_id },
            ));
            let at = follow_ups
                .iter()
                .position(|o| matches!(o, Output::Block(_)));
            follow_ups.insert(at.unwrap_or(follow_ups.len()), action);
        }
        out.push(Output::Alert(alert));
        out.extend(follow_ups);
    }

    /// Counts outputs and hands them out — or, replaying, swallows them.
    /// (The blocklist's records are counted as the engine made them; a service that settles
    /// them against other detectors may drop a tombstone or lengthen an upsert.)
    fn deliver(&mut self, out: Vec<Output>, mode: Mode) -> Vec<Output> {
        for o in &out {
            match o {
                Output::Alert(_) => self.stats.alerts += 1,
                Output::Action(_) => self.stats.actions += 1,
                Output::Block(_) => self.stats.blocks += 1,
                Output::Unblock { .. } => self.stats.unblocks += 1,
            }
        }
        match mode {
            Mode::Live => out,
            Mode::Replay => {
                self.stats.suppressed += out.len() as u64;
                Vec::new()
            }
        }
    }
}

/// The tombstone of a lifted block.
fn unblock(entry: BlockEntry) -> Output {
    Output::Unblock {
        ip: entry.ip,
        expires_at: entry.expires_at,
    }
}
