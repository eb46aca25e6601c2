//! `auditflow loadgen [--rate R] [--count N]`: synthetic user traffic (docs/cli.md).
//!
//! Publishes `N` CloudEvents at `R` per second to the demo's input topic (`user.events`, or
//! `AUDITFLOW_DEMO_TOPIC`; created when missing), with a progress line on stderr, and exits 0
//! once Kafka acknowledged every one (1 with the reason when one could not be delivered).
//!
//! The mix resembles a web application's audit stream: mostly page views, logins (one in
//! four failing, some from a new device), profile updates (some touching sensitive fields),
//! data reads and logouts, over 1 000 synthetic users (`loadgen_user_<n>`) and ips in
//! 198.51.100.0/24 (TEST-NET-2), so nothing real is ever generated. Events are keyed by user,
//! so one user's events stay in order on one partition.
//!
//! Pacing is by schedule, not by sleep per event: whenever it wakes, the generator sends what
//! the elapsed time calls for, so a slow tick is caught up instead of lowering the rate.
//! Deliveries in flight are bounded, so a slow broker slows the generator rather than growing
//! memory.

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use auditflow_core::Config;
use auditflow_runtime::kafka::publisher::{Delivery, Publisher};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use super::demo::{ensure_input_topic, input_topic};
use crate::cli::LoadgenArgs;

const USERS: u64 = 1_000;
/// Deliveries awaited at most at once: bounds memory whatever the rate.
const MAX_IN_FLIGHT: usize = 10_000;
const TICK: Duration = Duration::from_millis(5);
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: &LoadgenArgs, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    if args.rate == 0 {
        eprintln!("auditflow loadgen: --rate must be at least 1");
        return Ok(ExitCode::from(2));
    }
    let topic = input_topic();
    let runtime = super::runtime()?;
    let started = Instant::now();
    runtime.block_on(ensure_input_topic(config, &topic))?;
    let delivered = runtime.block_on(publish(config, &topic, args))?;
    let secs = started.elapsed().as_secs_f64();
    if json {
        let out = json!({"topic": topic, "delivered": delivered, "seconds": secs});
        println!("{out}");
    } else {
        println!(
            "delivered {delivered} events to {topic} in {secs:.1} s ({:.0}/s)",
            delivered as f64 / secs.max(1e-9)
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn publish(config: &Config, topic: &str, args: &LoadgenArgs) -> anyhow::Result<u64> {
    let publisher = Publisher::new(&config.kafka).context("creating a Kafka producer")?;
    let mut rng = XorShift::seeded();
    let mut in_flight: VecDeque<Delivery> = VecDeque::new();
    let mut progress = Progress::new(args.count);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut delivered = 0u64;
    while sent < args.count {
        // How many the schedule calls for by now.
        let due = ((start.elapsed().as_secs_f64() * f64::from(args.rate)) as u64)
            .saturating_add(1)
            .min(args.count);
        while sent < due {
            if in_flight.len() >= MAX_IN_FLIGHT {
                delivered += settle(in_flight.pop_front(), topic).await?;
                continue;
            }
            let (key, event) = synthetic_event(&mut rng);
            let payload = event.to_string();
            let queued = publisher
                .enqueue(topic, key.as_bytes(), payload.as_bytes())
                .with_context(|| format!("publishing to {topic}"))?;
            match queued {
                Some(delivery) => {
                    in_flight.push_back(delivery);
                    sent += 1;
                }
                // librdkafka's local queue is full: let deliveries drain, then retry.
                None => match in_flight.pop_front() {
                    Some(first) => delivered += settle(Some(first), topic).await?,
                    None => tokio::time::sleep(TICK).await,
                },
            }
        }
        // Collect what has already been acknowledged, without waiting: a zero timeout still
        // polls the delivery once.
        while let Some(front) = in_flight.front_mut() {
            let Ok(result) = tokio::time::timeout(Duration::ZERO, front).await else {
                break;
            };
            in_flight.pop_front();
            delivered += acknowledged(result, topic)?;
        }
        progress.show(sent, delivered, false);
        if sent < args.count {
            tokio::time::sleep(TICK).await;
        }
    }
    while let Some(delivery) = in_flight.pop_front() {
        delivered += settle(Some(delivery), topic).await?;
        progress.show(sent, delivered, false);
    }
    publisher
        .flush(DELIVERY_TIMEOUT)
        .with_context(|| format!("flushing to {topic}"))?;
    progress.show(sent, delivered, true);
    Ok(delivered)
}

/// Awaits one delivery: 1 when acknowledged, an error otherwise.
async fn settle(delivery: Option<Delivery>, topic: &str) -> anyhow::Result<u64> {
    let Some(delivery) = delivery else {
        return Ok(0);
    };
    match tokio::time::timeout(DELIVERY_TIMEOUT, delivery).await {
        Ok(result) => acknowledged(result, topic),
        Err(_) => Err(anyhow!(
            "delivering to {topic}: no acknowledgement within {} s",
            DELIVERY_TIMEOUT.as_secs()
        )),
    }
}

/// 1 for an acknowledged delivery, the reason otherwise.
fn acknowledged(result: auditflow_runtime::Result<()>, topic: &str) -> anyhow::Result<u64> {
    result
        .map(|()| 1)
        .with_context(|| format!("delivering to {topic}"))
}

/// A carriage-return progress line on stderr, redrawn at most every [`PROGRESS_EVERY`].
struct Progress {
    total: u64,
    start: Instant,
    last: Option<Instant>,
}

impl Progress {
    fn new(total: u64) -> Self {
        Self {
            total,
            start: Instant::now(),
            last: None,
        }
    }

    fn show(&mut self, sent: u64, delivered: u64, done: bool) {
        if !done && self.last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        self.last = Some(Instant::now());
        let width = 30u64;
        let filled = (delivered * width).checked_div(self.total).unwrap_or(width);
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let bar: String = (0..width)
            .map(|i| if i < filled { '#' } else { '.' })
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\rloadgen [{bar}] sent {sent}/{total} delivered {delivered} ({rate:.0}/s)",
            total = self.total,
            rate = sent as f64 / secs,
        );
        if done {
            let _ = writeln!(err);
        }
        let _ = err.flush();
    }
}

/// One synthetic user event and its key (the user id).
fn synthetic_event(rng: &mut XorShift) -> (String, Value) {
    let user = format!("loadgen_user_{}", rng.below(USERS));
    let ip = format!("198.51.100.{}", 1 + rng.below(254));
    let session = format!("loadgen_sess_{:x}", rng.next() & 0xffff_ffff);
    let roll = rng.below(100);
    let (event_type, data) = match roll {
        0..40 => (
            "user.page.viewed",
            json!({"page": pick(rng, &["/home", "/settings", "/billing", "/reports"])}),
        ),
        40..58 => (
            "user.login.attempt",
            json!({"success": true, "new_device": rng.below(10) == 0}),
        ),
        58..64 => (
            "user.login.attempt",
            json!({"success": false, "failure_count": 1 + rng.below(3)}),
        ),
        64..74 => {
            let field = pick(rng, &["display_name", "timezone", "email", "phone"]);
            (
                "user.profile.updated",
                json!({"changes": {field: "updated"}}),
            )
        }
        74..90 => (
            "user.data.read",
            json!({"data_type": "user_profile", "record_count": 1 + rng.below(20),
                   "purpose": "account_page"}),
        ),
        _ => ("user.logout", json!({})),
    };
    let mut data = data;
    if let Some(fields) = data.as_object_mut() {
        fields.insert("user_id".into(), json!(user));
        fields.insert("ip_address".into(), json!(ip));
        fields.insert("session_id".into(), json!(session));
        fields.insert("user_agent".into(), json!("auditflow-loadgen/1.0"));
    }
    let event = json!({
        "specversion": "1.0",
        "id": Uuid::new_v4().to_string(),
        "source": "/auditflow/loadgen",
        "type": event_type,
        "subject": format!("user:{user}"),
        "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "datacontenttype": "application/json",
        "data": data,
    });
    (user, event)
}

fn pick(rng: &mut XorShift, choices: &[&'static str]) -> &'static str {
    choices[rng.below(choices.len() as u64) as usize]
}

/// A small non-cryptographic generator: the mix needs variety, not secrecy, and this avoids a
/// dependency for it.
struct XorShift(u64);

impl XorShift {
    fn seeded() -> Self {
        let seed = Uuid::new_v4().as_u64_pair().0;
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_valid_user_events_keyed_by_user() {
        let mut rng = XorShift(42);
        let mut types = std::collections::BTreeSet::new();
        let mut failures = 0;
        for _ in 0..2_000 {
            let (key, event) = synthetic_event(&mut rng);
            let t = event["type"].as_str().unwrap();
            assert!(t.starts_with("user."), "{t}");
            assert_eq!(event["data"]["user_id"], key);
            assert_eq!(event["subject"], format!("user:{key}"));
            assert!(
                event["data"]["ip_address"]
                    .as_str()
                    .unwrap()
                    .starts_with("198.51.100.")
            );
            if t == "user.login.attempt" && event["data"]["success"] == false {
                failures += 1;
            }
            types.insert(t.to_owned());
        }
        assert_eq!(types.len(), 5, "{types:?}");
        assert!((60..=200).contains(&failures), "{failures}");
    }
}
