//! The chaos run's inputs: a seeded, timed mix of the recipe's user lifecycles, attack bursts
//! whose alerts are known in advance, and a garbage corpus whose dead-letter reasons are known,
//! in structured and binary mode, and what each must become.
//!
//! Every name is unique to the run (`<run>` in ids, users and sources), so one run never sees
//! another's records. Users and ips are synthetic: lifecycle users come from 10.0.0.0/8,
//! attackers from 100.64.0.0/10 (shared address space) and 2001:db8::/32 (documentation).
//!
//! What a kept input must become is asked of the classifier's pure function
//! ([`Classifier::classify_record`]) on the exact bytes and headers sent: the chaos ledger
//! checks delivery under faults, and the classification itself is the classifier tests' job.
//! What is declared by hand is what the contract says without running any code: which inputs
//! are garbage and with which reason (checked against that function before anything is sent,
//! so a corpus and a classifier that disagree stop the run at once), and which alerts, actions
//! and blocks each attack raises (SPEC §7, docs/security-rules.md).

use std::collections::BTreeSet;
use std::time::Duration;

use auditflow_core::Config;
use auditflow_core::classify::{Classified, Classifier};
use chrono::{DateTime, SecondsFormat, Utc};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

/// One record to send.
#[derive(Debug, Clone)]
pub struct Planned {
    /// When to send it, from the start of production.
    pub at: Duration,
    /// The input topic.
    pub topic: String,
    /// The Kafka key (the user, so one user's events stay in order).
    pub key: Option<String>,
    /// The record value.
    pub value: Vec<u8>,
    /// The record headers (binary mode's `ce_*`, or the garbage's).
    pub headers: Vec<(String, Vec<u8>)>,
    /// What produced it: `lifecycle`, `attack`, `odd` (kept, but unusual) or `garbage`.
    pub family: &'static str,
    /// What the contract says becomes of it.
    pub fate: Fate,
}

/// What becomes of an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// Audited: these `(topic, id)` outputs, each exactly once.
    Outputs(Vec<(String, String)>),
    /// Sampled out: no output at all.
    SampledOut,
    /// Ignored by the loop guard: no output at all.
    Ignored,
    /// One dead letter with this reason code.
    DeadLetter(String),
}

/// An alert the attacks must raise exactly once: `(rule, level, key)`, the key being the
/// source (an ip, or an IPv6 /64) for ip-keyed rules and the user otherwise.
pub type ExpectedAlert = (String, String, String);

/// An action the attacks must raise exactly once: `("block_ip", ip)` or
/// `("disable_account", user)`.
pub type ExpectedAction = (String, String);

/// Everything a run sends, in sending order, and what the attacks must raise.
#[derive(Debug, Default)]
pub struct Corpus {
    /// The records, ordered by [`Planned::at`].
    pub records: Vec<Planned>,
    /// Alerts the attacks raise.
    pub alerts: Vec<ExpectedAlert>,
    /// Actions the attacks raise.
    pub actions: Vec<ExpectedAction>,
    /// The sources standing on the blocklist at the end (blocks last an hour; a run is shorter).
    pub blocked: BTreeSet<String>,
}

/// Events per lifecycle (see [`lifecycle`]).
const LIFECYCLE_EVENTS: usize = 13;
/// How often an attack wave starts, and a garbage record is sent.
const WAVE_EVERY: Duration = Duration::from_secs(10);
const GARBAGE_EVERY: Duration = Duration::from_secs(3);
/// The sampling rule of a run (`[sampling]`): page views are kept at half rate.
pub const SAMPLING: (&str, f64) = ("user.page.*", 0.5);

/// The run's names: its input topics and the tag in every id.
pub struct Names<'a> {
    /// A tag unique to the run, `[a-z0-9_]`.
    pub run: &'a str,
    /// The `user.*` input topic.
    pub user_topic: &'a str,
    /// The `system.*` input topic.
    pub system_topic: &'a str,
}

/// Builds the corpus for `duration` of production at `rate` records per second, and checks
/// every declared dead letter against `config`'s classifier. `start` is the wall-clock time
/// production begins (event times are `start + at`).
pub fn build(
    names: &Names<'_>,
    config: &Config,
    rng: &mut ChaCha8Rng,
    duration: Duration,
    rate: u32,
    start: DateTime<Utc>,
) -> Result<Corpus, String> {
    let mut corpus = Corpus::default();
    let mut raw: Vec<Raw> = Vec::new();
    let secs = duration.as_secs_f64();

    // Attack waves, cycling through every kind so a short run has each once.
    let mut wave = 0u32;
    let mut t = Duration::from_secs(2);
    while t.as_secs_f64() < secs - 3.0 {
        attack(names, wave, t, &mut raw, &mut corpus);
        wave += 1;
        t += WAVE_EVERY;
    }
    // Garbage and odd records, cycling through the corpus.
    let mut g = 0u32;
    let mut t = Duration::from_millis(1500);
    while t.as_secs_f64() < secs - 1.0 {
        garbage(names, g, t, &mut raw);
        g += 1;
        t += GARBAGE_EVERY;
    }
    // Lifecycles fill the rest of the rate.
    let fixed = raw.len() as f64;
    let wanted = (secs * f64::from(rate)).max(fixed + LIFECYCLE_EVENTS as f64);
    let users = ((wanted - fixed) / LIFECYCLE_EVENTS as f64).ceil() as u32;
    for user in 0..users {
        // Each lifecycle starts at a random moment and takes a few seconds.
        let begin = rng.random_range(0.0..(secs - 4.0).max(0.5));
        lifecycle(names, user, Duration::from_secs_f64(begin), rng, &mut raw);
    }
    raw.sort_by_key(|r| r.at);

    let classifier = Classifier::new(config).map_err(|e| format!("the classifier: {e}"))?;
    for r in raw {
        let (value, headers) = r.encode(start);
        let header_refs = headers.iter().map(|(k, v)| (k.as_str(), v.as_slice()));
        let verdict = classifier.classify_record(header_refs, &value, start);
        let fate = match verdict {
            Classified::Emit(outputs) => {
                Fate::Outputs(outputs.into_iter().map(|o| (o.topic, o.id)).collect())
            }
            Classified::SampledOut { .. } => Fate::SampledOut,
            Classified::Ignored => Fate::Ignored,
            Classified::Rejected(rejection) => Fate::DeadLetter(rejection.reason.to_string()),
        };
        let declared_garbage = matches!(r.expect, Expect::DeadLetter(_));
        match (&r.expect, &fate) {
            (Expect::DeadLetter(reason), Fate::DeadLetter(got)) if reason == got => {}
            (Expect::Ignored, Fate::Ignored) => {}
            (Expect::Kept, Fate::Outputs(_) | Fate::SampledOut) => {}
            (expect, _) => {
                return Err(format!(
                    "corpus and classifier disagree on a {} record ({}): declared {expect:?}, \
                     classified {fate:?}",
                    r.family, r.what
                ));
            }
        }
        corpus.records.push(Planned {
            at: r.at,
            topic: if r.system {
                names.system_topic.to_owned()
            } else {
                names.user_topic.to_owned()
            },
            key: r.key,
            value,
            headers,
            family: if declared_garbage {
                "garbage"
            } else {
                r.family
            },
            fate,
        });
    }
    Ok(corpus)
}

/// What the corpus declares before the classifier is asked.
#[derive(Debug, Clone)]
enum Expect {
    Kept,
    Ignored,
    DeadLetter(&'static str),
}

/// A record before encoding: its event (or raw bytes), mode and timing.
struct Raw {
    at: Duration,
    key: Option<String>,
    system: bool,
    family: &'static str,
    what: &'static str,
    body: Body,
    expect: Expect,
}

enum Body {
    /// A CloudEvent: `time` is set to `start + at + time_offset` unless it has one; sent
    /// structured, or binary (attributes as `ce_*` headers, `data` as the value).
    Event {
        event: Value,
        binary: bool,
        time_offset: Duration,
    },
    /// Bytes and headers as they are.
    Bytes {
        value: Vec<u8>,
        headers: Vec<(String, Vec<u8>)>,
    },
}

impl Raw {
    fn encode(&self, start: DateTime<Utc>) -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
        match &self.body {
            Body::Bytes { value, headers } => (value.clone(), headers.clone()),
            Body::Event {
                event,
                binary,
                time_offset,
            } => {
                let mut event = event.clone();
                if event.get("time").is_none() {
                    let time = start
                        + chrono::Duration::from_std(self.at + *time_offset).unwrap_or_default();
                    event["time"] = json!(time.to_rfc3339_opts(SecondsFormat::Millis, true));
                }
                if !binary {
                    return (event.to_string().into_bytes(), Vec::new());
                }
                let object = event.as_object().cloned().unwrap_or_default();
                let mut headers = vec![("content-type".to_owned(), b"application/json".to_vec())];
                let mut data = json!({});
                for (name, value) in object {
                    if name == "data" {
                        data = value;
                        continue;
                    }
                    let text = match value {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    headers.push((format!("ce_{name}"), text.into_bytes()));
                }
                (data.to_string().into_bytes(), headers)
            }
        }
    }
}

fn event(names: &Names<'_>, id: String, source: &str, ty: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": format!("chaos://{}/{source}", names.run),
        "type": ty,
        "data": data,
    })
}

/// One user's life: created, a login, page views (sampled at half rate), a sensitive profile
/// change, data read and exported, a role change, a failed login, a renewal (financial), a
/// newsletter (marketing), logout. Fewer than 20 actions, so unusual_access never has a
/// baseline to judge them by, and one failure from the user's own ip: nothing alerts.
fn lifecycle(
    names: &Names<'_>,
    user_n: u32,
    begin: Duration,
    rng: &mut ChaCha8Rng,
    out: &mut Vec<Raw>,
) {
    let user = format!("chaos-{}-user-{user_n}", names.run);
    let ip = format!(
        "10.{}.{}.{}",
        (user_n >> 16) & 0xff,
        (user_n >> 8) & 0xff,
        (user_n & 0xff).max(1)
    );
    let agent = format!("chaos-agent/{}", user_n % 7);
    let session = format!("s-{}-{user_n}", names.run);
    let binary = user_n % 3 == 2;
    let steps: [(&str, Value); LIFECYCLE_EVENTS] = [
        ("user.created", json!({"user_id": user, "plan": "free"})),
        (
            "user.login.attempt",
            json!({"user_id": user, "success": true, "ip_address": ip,
                                      "user_agent": agent, "session_id": session}),
        ),
        (
            "user.page.viewed",
            json!({"user_id": user, "page": "/home", "ip_address": ip}),
        ),
        (
            "user.page.viewed",
            json!({"user_id": user, "page": "/orders", "ip_address": ip}),
        ),
        (
            "user.profile.updated",
            json!({"user_id": user, "ip_address": ip,
                                        "changes": {"email": "x", "display_name": "y"}}),
        ),
        (
            "user.data.read",
            json!({"user_id": user, "data_type": "orders", "record_count": 3}),
        ),
        (
            "user.page.viewed",
            json!({"user_id": user, "page": "/export", "ip_address": ip}),
        ),
        (
            "user.data.export",
            json!({"user_id": user, "data_type": "user_profile",
                                    "purpose": "gdpr_request"}),
        ),
        (
            "user.role.changed",
            json!({"user_id": user, "new_role": "editor",
                                     "old_role": "viewer", "changed_by": "chaos-admin"}),
        ),
        (
            "user.login.attempt",
            json!({"user_id": user, "success": false, "ip_address": ip,
                                      "user_agent": agent}),
        ),
        (
            "user.subscription.renewed",
            json!({"user_id": user, "plan": "pro"}),
        ),
        ("user.newsletter.subscribed", json!({"user_id": user})),
        (
            "user.logout",
            json!({"user_id": user, "session_id": session}),
        ),
    ];
    let mut at = begin;
    let mut previous: Option<String> = None;
    for (i, (ty, data)) in steps.into_iter().enumerate() {
        let id = format!("{}-u{user_n}-{i}", names.run);
        let mut e = event(names, id.clone(), "app", ty, data);
        e["correlationid"] = json!(format!("{}-life-{user_n}", names.run));
        if let Some(cause) = previous.replace(id) {
            e["causationid"] = json!(cause);
        }
        out.push(Raw {
            at,
            key: Some(user.clone()),
            system: false,
            family: "lifecycle",
            what: "lifecycle event",
            body: Body::Event {
                event: e,
                binary,
                time_offset: Duration::ZERO,
            },
            expect: Expect::Kept,
        });
        at += Duration::from_millis(rng.random_range(50..400));
    }
}

/// Wave `w`: one attack of the kind its number picks, and what it must raise.
fn attack(names: &Names<'_>, w: u32, at: Duration, out: &mut Vec<Raw>, corpus: &mut Corpus) {
    let run = names.run;
    let (hi, lo) = ((w >> 8) & 0xff, w & 0xff);
    let mut push = |k: u32, key: &str, ty: &str, data: Value, offset: Duration, binary: bool| {
        let id = format!("{run}-w{w}-{k}");
        out.push(Raw {
            at: at + offset,
            key: Some(key.to_owned()),
            system: false,
            family: "attack",
            what: "attack event",
            body: Body::Event {
                event: event(names, id, "auth", ty, data),
                binary,
                time_offset: Duration::ZERO,
            },
            expect: Expect::Kept,
        });
    };
    let alert = |corpus: &mut Corpus, rule: &str, level: &str, key: &str| {
        corpus
            .alerts
            .push((rule.to_owned(), level.to_owned(), key.to_owned()));
    };
    let ms = |n: u32| Duration::from_millis(u64::from(n) * 100);
    match w % 5 {
        // Brute force over IPv4, every third failure spelled as an IPv4-mapped IPv6 address
        // (one source all the same): medium at the 6th, high at the 11th, critical at the 21st.
        0 => {
            let ip = format!("100.64.{hi}.{}", lo.max(1));
            let victim = format!("chaos-{run}-victim-{w}");
            for k in 0..21 {
                let spelled = if k % 3 == 1 && k != 20 {
                    format!("::ffff:{ip}")
                } else {
                    ip.clone()
                };
                let data = json!({"user_id": victim, "success": false, "ip_address": spelled});
                push(k, &victim, "user.login.attempt", data, ms(k), k % 2 == 0);
            }
            for level in ["medium", "high", "critical"] {
                alert(corpus, "brute_force", level, &ip);
            }
            corpus.actions.push(("block_ip".into(), ip.clone()));
            corpus.actions.push(("disable_account".into(), victim));
            corpus.blocked.insert(ip);
        }
        // Credential stuffing: ten users failing once each from one ip: brute force medium at
        // the 6th failure, credential stuffing high at the 10th.
        1 => {
            let ip = format!("100.65.{hi}.{}", lo.max(1));
            for k in 0..10 {
                let user = format!("chaos-{run}-stuffed-{w}-{k}");
                let data = json!({"user_id": user, "success": false, "ip_address": ip});
                push(k, &user, "user.login.attempt", data, ms(k), false);
            }
            alert(corpus, "brute_force", "medium", &ip);
            alert(corpus, "credential_stuffing", "high", &ip);
        }
        // Impossible travel: Berlin, then Sydney 30 s later: critical, the second login's ip
        // blocked and the account disabled.
        2 => {
            let user = format!("chaos-{run}-traveller-{w}");
            // Two distinct ips per wave: waves of this kind are 5 apart.
            let m = w / 5;
            let (net, host) = ((m >> 7) & 0xff, (m & 0x7f) * 2);
            let (from, to) = (
                format!("100.66.{net}.{}", host + 1),
                format!("100.66.{net}.{}", host + 2),
            );
            let berlin = json!({"user_id": user, "success": true, "ip_address": from,
                                "geo": {"lat": 52.52, "lon": 13.405, "country": "DE"}});
            let sydney = json!({"user_id": user, "success": true, "ip_address": to,
                                "geo": {"lat": -33.8688, "lon": 151.2093, "country": "AU"}});
            push(
                0,
                &user,
                "user.login.attempt",
                berlin,
                Duration::ZERO,
                false,
            );
            push(
                1,
                &user,
                "user.login.attempt",
                sydney,
                Duration::from_secs(30),
                true,
            );
            alert(corpus, "impossible_travel", "critical", &user);
            corpus.actions.push(("block_ip".into(), to.clone()));
            corpus.actions.push(("disable_account".into(), user));
            corpus.blocked.insert(to);
        }
        // Privilege escalation: a user granting themself root from an ip (95, critical), and an
        // admin granting another user owner (80, high).
        3 => {
            let ip = format!("100.67.{hi}.{}", lo.max(1));
            let escalator = format!("chaos-{run}-escalator-{w}");
            let promoted = format!("chaos-{run}-promoted-{w}");
            let own = json!({"user_id": escalator, "new_role": "root", "old_role": "member",
                             "changed_by": escalator, "ip_address": ip});
            let granted = json!({"user_id": promoted, "new_role": "owner", "old_role": "member",
                                 "changed_by": "chaos-admin"});
            push(
                0,
                &escalator,
                "user.role.changed",
                own,
                Duration::ZERO,
                false,
            );
            push(
                1,
                &promoted,
                "user.permission.granted",
                granted,
                ms(1),
                true,
            );
            alert(corpus, "privilege_escalation", "critical", &escalator);
            alert(corpus, "privilege_escalation", "high", &promoted);
            corpus.actions.push(("block_ip".into(), ip.clone()));
            corpus.actions.push(("disable_account".into(), escalator));
            corpus.blocked.insert(ip);
        }
        // Brute force over IPv6, a new address of one /64 for every failure: counted as one
        // source, the /64, which is what the block names.
        _ => {
            let prefix = format!("2001:db8:{:x}", w + 1);
            let victim = format!("chaos-{run}-victim6-{w}");
            for k in 0..21 {
                let ip = format!("{prefix}::{:x}", k + 1);
                let data = json!({"user_id": victim, "success": false, "ip_address": ip});
                push(k, &victim, "user.login.attempt", data, ms(k), false);
            }
            let source = format!("{prefix}::/64");
            for level in ["medium", "high", "critical"] {
                alert(corpus, "brute_force", level, &source);
            }
            corpus.actions.push(("block_ip".into(), source.clone()));
            corpus.actions.push(("disable_account".into(), victim));
            corpus.blocked.insert(source);
        }
    }
}

/// Garbage record `g` (and the odd records that are kept), cycling through the corpus.
fn garbage(names: &Names<'_>, g: u32, at: Duration, out: &mut Vec<Raw>) {
    let run = names.run;
    let id = format!("{run}-g{g}");
    let bytes = |value: Vec<u8>, headers: Vec<(String, Vec<u8>)>| Body::Bytes { value, headers };
    let plain = |ty: &str, data: Value| Body::Event {
        event: event(names, id.clone(), "odd", ty, data),
        binary: false,
        time_offset: Duration::ZERO,
    };
    let ce = |pairs: &[(&str, &[u8])]| -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
            .collect()
    };
    let user = format!("chaos-{run}-odd-{g}");
    let (what, system, body, expect): (&'static str, bool, Body, Expect) = match g % 12 {
        0 => (
            "invalid UTF-8",
            false,
            bytes(
                b"{\"id\":\"\xff\xfe\",\"source\":\"x\"}".to_vec(),
                Vec::new(),
            ),
            Expect::DeadLetter("invalid_json"),
        ),
        1 => {
            // Over the 1 MiB limit: 1.5 MB of one string field.
            let mut e = event(
                names,
                id.clone(),
                "odd",
                "user.created",
                json!({"user_id": user}),
            );
            e["data"]["blob"] = json!("x".repeat(1_500_000));
            (
                "over the size limit",
                false,
                bytes(e.to_string().into_bytes(), Vec::new()),
                Expect::DeadLetter("too_large"),
            )
        }
        2 => {
            // Nesting past the 64-level limit.
            let deep = format!("{}1{}", "[".repeat(80), "]".repeat(80));
            let text = format!(
                "{{\"id\":\"{id}\",\"source\":\"x\",\"type\":\"user.created\",\"data\":{{\"user_id\":\"{user}\",\"n\":{deep}}}}}"
            );
            (
                "nesting past the limit",
                false,
                bytes(text.into_bytes(), Vec::new()),
                Expect::DeadLetter("invalid_json"),
            )
        }
        3 => (
            "a type that is a number",
            false,
            bytes(
                json!({"id": id, "source": "x", "type": 42, "data": {"user_id": user}})
                    .to_string()
                    .into_bytes(),
                Vec::new(),
            ),
            Expect::DeadLetter("invalid_envelope"),
        ),
        4 => (
            "binary mode with ce_specversion 2.0",
            false,
            bytes(
                json!({"user_id": user}).to_string().into_bytes(),
                ce(&[
                    ("ce_specversion", b"2.0"),
                    ("ce_id", id.as_bytes()),
                    ("ce_source", b"chaos"),
                    ("ce_type", b"user.created"),
                ]),
            ),
            Expect::DeadLetter("invalid_envelope"),
        ),
        5 => (
            "binary mode without ce_type",
            false,
            bytes(
                json!({"user_id": user}).to_string().into_bytes(),
                ce(&[
                    ("ce_specversion", b"1.0"),
                    ("ce_id", id.as_bytes()),
                    ("ce_source", b"chaos"),
                ]),
            ),
            Expect::DeadLetter("invalid_envelope"),
        ),
        6 => {
            // A small binary-mode event carrying 1.2 MB of headers: in binary mode the headers
            // are part of the record the limit is on (in structured mode only the value is).
            let pad = vec![b'h'; 600_000];
            (
                "huge headers (binary mode)",
                false,
                bytes(
                    json!({"user_id": user}).to_string().into_bytes(),
                    vec![
                        ("ce_specversion".into(), b"1.0".to_vec()),
                        ("ce_id".into(), id.clone().into_bytes()),
                        ("ce_source".into(), b"chaos".to_vec()),
                        ("ce_type".into(), b"user.created".to_vec()),
                        ("x-pad-1".into(), pad.clone()),
                        ("x-pad-2".into(), pad),
                    ],
                ),
                Expect::DeadLetter("too_large"),
            )
        }
        7 => (
            "a profile update naming no user",
            false,
            plain("user.profile.updated", json!({"changes": {"email": "x"}})),
            Expect::DeadLetter("missing_user_id"),
        ),
        8 => (
            "a type no rule covers",
            true,
            plain("billing.charged", json!({"amount": 5})),
            Expect::DeadLetter("unknown_type"),
        ),
        9 => (
            "a failed login dated 30 days ahead",
            false,
            Body::Event {
                event: event(
                    names,
                    id.clone(),
                    "odd",
                    "user.login.attempt",
                    json!({"user_id": user, "success": false,
                           "ip_address": format!("100.68.{}.{}", (g >> 8) & 0xff, (g & 0xff).max(1))}),
                ),
                binary: false,
                time_offset: Duration::from_secs(30 * 86_400),
            },
            Expect::Kept,
        ),
        10 => (
            "an audit.* type (the loop guard)",
            false,
            plain("audit.user.action", json!({"user_id": user})),
            Expect::Ignored,
        ),
        _ => (
            "a system security event",
            true,
            plain(
                "system.security.scan_detected",
                json!({"severity": "warning", "scanner": "chaos"}),
            ),
            Expect::Kept,
        ),
    };
    out.push(Raw {
        at,
        key: Some(user),
        system,
        family: "odd",
        what,
        body,
        expect,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn corpus(seed: u64) -> Corpus {
        let config = Config::from_toml_str(&format!(
            "[sampling]\n\"{}\" = {}\n[topics]\nclassifier_inputs = [\"c.user.events\"]\n",
            SAMPLING.0, SAMPLING.1
        ))
        .unwrap();
        let names = Names {
            run: "t1",
            user_topic: "c.user.events",
            system_topic: "c.system.events",
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        build(
            &names,
            &config,
            &mut rng,
            Duration::from_secs(60),
            50,
            Utc::now(),
        )
        .expect("corpus")
    }

    #[test]
    fn a_minute_holds_every_attack_and_every_garbage_kind_and_agrees_with_the_classifier() {
        let c = corpus(7);
        assert!(c.records.len() >= 3000, "{}", c.records.len());
        let reasons: BTreeSet<&str> = c
            .records
            .iter()
            .filter_map(|r| match &r.fate {
                Fate::DeadLetter(reason) => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        for reason in [
            "invalid_json",
            "invalid_envelope",
            "too_large",
            "missing_user_id",
            "unknown_type",
        ] {
            assert!(reasons.contains(reason), "{reason}: {reasons:?}");
        }
        let rules: BTreeSet<&str> = c.alerts.iter().map(|(rule, ..)| rule.as_str()).collect();
        assert_eq!(rules.len(), 4, "{rules:?}");
        assert!(c.records.iter().any(|r| r.fate == Fate::SampledOut));
        assert!(c.records.iter().any(|r| r.fate == Fate::Ignored));
        assert!(
            c.records
                .iter()
                .any(|r| !r.headers.is_empty() && r.family == "lifecycle")
        );
        assert!(c.records.windows(2).all(|w| w[0].at <= w[1].at));
    }

    #[test]
    fn one_seed_is_one_corpus() {
        let (a, b) = (corpus(3), corpus(3));
        assert_eq!(a.records.len(), b.records.len());
        assert!(
            a.records
                .iter()
                .zip(&b.records)
                .all(|(x, y)| x.at == y.at && x.key == y.key && x.fate == y.fate)
        );
    }
}
