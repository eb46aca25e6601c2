//! The security monitor's state under an address spray (run on demand, not in the test suite):
//! what one detector — the state of one input partition — holds and costs when every failed
//! login comes from an address never seen before, against the same number of failed logins
//! from six attacking addresses, measured in the same run.
//!
//! ```sh
//! cargo run --release -p auditflow-core --example detector_spray -- 1000000
//! ```
//!
//! Each event goes the monitor's way: the real `Classifier` makes the audit records of a failed
//! login, `Observation::from_event` reads them, `Detector::observe` judges them (default
//! `[security]` settings: `max_state_bytes` 32 MiB). Spray: login `i` from `2001:db8:<i>::1`
//! (its own /64, so its own key) against user `user-<i % 5000>`; baseline: the same logins from
//! six addresses. Prints events/s, the detector's state bytes and keys, evictions and the
//! process's peak RSS for each, and the ratio.

use std::time::Instant;

use auditflow_core::detect::{Detector, IdSecret, Mode, Observation};
use auditflow_core::{Classified, Classifier, Config};
use chrono::{Duration, TimeZone, Utc};

fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map_or(1_000_000, |n| n.parse().expect("EVENTS is a number"));
    let config = Config::default();
    let classifier = Classifier::new(&config).expect("classifier");
    let base = Utc.with_ymd_and_hms(2026, 12, 3, 9, 0, 0).unwrap();
    let six = run("six addresses", events, &classifier, &config, base, |i| {
        format!("203.0.113.{}", 1 + i % 6)
    });
    let spray = run("spray", events, &classifier, &config, base, |i| {
        format!("2001:db8:{:x}:{:x}::1", i >> 16, i & 0xffff)
    });
    println!("spray / six addresses events/s: {:.2}", spray / six);
    println!(
        "BENCH|monitor detector events/s under an address spray|{spray:.0}|{six:.0} (six addresses)|{:.2}|{:.1}",
        spray / six,
        peak_rss_mib()
    );
}

/// Feeds `events` failed logins, from `ip_of(i)`, 10 ms apart; events/s of the observe calls.
fn run(
    label: &str,
    events: usize,
    classifier: &Classifier,
    config: &Config,
    base: chrono::DateTime<Utc>,
    ip_of: impl Fn(usize) -> String,
) -> f64 {
    let mut detector = Detector::new(&config.security, IdSecret::development()).expect("detector");
    // The inputs made first, so that only detection is timed.
    let observations: Vec<Observation> = (0..events)
        .flat_map(|i| {
            let time = base + Duration::milliseconds(10 * i as i64);
            let input = format!(
                r#"{{"id":"in-{i}","source":"/bench/spray","type":"user.login.attempt","time":"{}","data":{{"user_id":"user-{}","success":false,"ip_address":"{}"}}}}"#,
                time.to_rfc3339(),
                i % 5_000,
                ip_of(i)
            );
            let Classified::Emit(outputs) = classifier.classify_structured(input.as_bytes(), time)
            else {
                panic!("a failed login is audited");
            };
            outputs
                .into_iter()
                .filter_map(move |output| {
                    Observation::from_event(&output.event(), time).expect("observable")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let started = Instant::now();
    let mut raised = 0usize;
    let last = observations.last().map_or(base, |o| o.time);
    for (n, obs) in observations.iter().enumerate() {
        raised += detector.observe(obs, Mode::Live, obs.time).len();
        if (n + 1) % (observations.len() / 4).max(1) == 0 {
            let (keys, other) = detector.tracked();
            println!(
                "  {label}: {} observations, state {:.1} MiB, tracked {keys}/{other}, evicted {}",
                n + 1,
                detector.state_bytes() as f64 / 1_048_576.0,
                detector.evicted_keys()
            );
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let rate = events as f64 / secs;
    println!(
        "{label}: {events} failed logins ({} observations) in {secs:.2} s = {rate:.0} events/s; \
         {raised} outputs; state {:.1} MiB at the end (event time {last}); evicted {} keys; \
         peak RSS so far {:.1} MiB",
        observations.len(),
        detector.state_bytes() as f64 / 1_048_576.0,
        detector.evicted_keys(),
        peak_rss_mib()
    );
    rate
}

/// The process's peak RSS (`VmHWM`), MiB; 0 where `/proc` has none.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
