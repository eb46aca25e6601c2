//! Scenario tests of the whole engine: each rule at, just below and just above its thresholds,
//! window edges, episodes, late events, replay and bounds.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::*;

fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap() + TimeDelta::milliseconds(ms)
}

const SEC: i64 = 1000;
const MIN: i64 = 60 * SEC;

/// The wall clock of these tests: well after every event they make (a day after t(0)), so
/// none is future-dated unless a test says so.
fn wall() -> DateTime<Utc> {
    t(24 * 60 * MIN)
}

/// Source ips of the scenarios (documentation ranges, RFC 5737 and RFC 3849).
const IP: &str = "203.0.113.9";
const OTHER: &str = "198.51.100.30";
const HOT: &str = "198.51.100.99";

fn obs(kind: InputKind, id: &str, at: i64, data: Value) -> Observation {
    let data = data.as_object().cloned().unwrap_or_default();
    Observation::new(kind, id, t(at), Some(&format!("corr-{id}")), &data).unwrap()
}

fn failed(id: &str, at: i64, ip: &str, user: Option<&str>) -> Observation {
    let mut data = json!({"event_type": "failed_login", "severity": "warning", "details": {},
                          "source_ip": ip});
    if let Some(user) = user {
        data["user_id"] = user.into();
    }
    obs(InputKind::SecurityEvent, id, at, data)
}

fn login(id: &str, at: i64, user: &str, (lat, lon): (f64, f64)) -> Observation {
    obs(
        InputKind::UserAction,
        id,
        at,
        json!({"user_id": user, "action": "login_attempt",
        "outcome": "success", "ip_address": "198.51.100.7", "context": {"geo": {"lat": lat, "lon": lon}}}),
    )
}

fn grant(id: &str, at: i64, user: &str, role: &str, by: &str) -> Observation {
    obs(
        InputKind::UserAction,
        id,
        at,
        json!({"user_id": user, "action": "privilege_change",
        "outcome": "success", "context": {"new_role": role, "changed_by": by}}),
    )
}

fn act(id: &str, at: i64, user: &str, ip: &str, agent: &str) -> Observation {
    obs(
        InputKind::UserAction,
        id,
        at,
        json!({"user_id": user, "action": "page_view",
        "outcome": "success", "ip_address": ip, "user_agent": agent}),
    )
}

fn detector() -> Detector {
    with(&SecuritySettings::default())
}

fn with(settings: &SecuritySettings) -> Detector {
    Detector::new(settings, IdSecret::development()).unwrap()
}

fn run(d: &mut Detector, events: &[Observation]) -> Vec<Output> {
    events
        .iter()
        .flat_map(|o| d.observe(o, Mode::Live, wall()))
        .collect()
}

fn alerts(out: &[Output]) -> Vec<(Rule, ThreatLevel, u8)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some((a.rule, a.level, a.score)),
            _ => None,
        })
        .collect()
}

/// What a burst of 21 failures raises, in order.
const MEDIUM_HIGH_CRITICAL: [ThreatLevel; 3] = [
    ThreatLevel::Medium,
    ThreatLevel::High,
    ThreatLevel::Critical,
];

/// `n` failures from one ip, one second apart, by `users` cycling.
fn burst(n: usize, ip: &str, users: &[&str]) -> Vec<Observation> {
    (0..n)
        .map(|i| {
            failed(
                &format!("f{i}"),
                i as i64 * SEC,
                ip,
                Some(users[i % users.len()]),
            )
        })
        .collect()
}

#[test]
fn a_burst_of_21_failures_alerts_medium_high_critical_once_each() {
    let mut d = detector();
    let events = burst(23, IP, &["alice"]);
    let mut levels_at = Vec::new();
    for (i, e) in events.iter().enumerate() {
        for o in d.observe(e, Mode::Live, wall()) {
            if let Output::Alert(a) = o {
                levels_at.push((i + 1, a.level, a.score, a.count));
            }
        }
    }
    use ThreatLevel::*;
    // 5 → 10 (low), 6 → 50, 10 → 50, 11 → 80, 20 → 80, 21 → 95: at, below and above each.
    assert_eq!(
        levels_at,
        [
            (6, Medium, 50, Some(6)),
            (11, High, 80, Some(11)),
            (21, Critical, 95, Some(21))
        ]
    );
}

#[test]
fn a_critical_alert_acts_and_blocks() {
    let mut d = detector();
    let out = run(&mut d, &burst(21, IP, &["alice"]));
    let tail: Vec<Value> = out[2..]
        .iter()
        .map(|o| o.to_cloudevent().unwrap())
        .collect();
    assert_eq!(
        tail.len(),
        4,
        "alert, block_ip, disable_account, blocklist: {tail:#?}"
    );
    let alert = &tail[0];
    assert_eq!(alert["type"], "security.alert");
    assert_eq!(alert["data"]["level"], "critical");
    assert_eq!(alert["data"]["rule"], "brute_force");
    assert_eq!(alert["data"]["source_ip"], "203.0.113.9");
    assert_eq!(alert["data"]["user_id"], "alice");
    assert_eq!(alert["data"]["evidence"].as_array().unwrap().len(), 21);
    assert_eq!(alert["data"]["window_end"], "2023-11-14T22:13:40Z");
    assert_eq!(alert["data"]["window_start"], "2023-11-14T22:03:40Z");
    assert_eq!(alert["causationid"], "f20");
    assert_eq!(alert["correlationid"], "corr-f20");
    assert_eq!(
        tail[1]["data"],
        json!({"action": "block_ip", "ip": IP,
        "reason": "brute_force", "expires_at": "2023-11-14T23:13:40Z"})
    );
    assert_eq!(
        tail[2]["data"],
        json!({"action": "disable_account", "user_id": "alice",
        "reason": "security_threat"})
    );
    assert_eq!(tail[3]["type"], "security.blocklist.entry");
    for action in &tail[1..] {
        assert_eq!(action["causationid"], alert["id"]);
    }
    assert_eq!(out[3].key(), "203.0.113.9");
    assert_eq!(out[4].key(), "alice");
    assert_eq!(out[5].stream(), OutputStream::Blocklist);
}

#[test]
fn an_unknown_user_is_not_disabled() {
    let mut d = detector();
    let events: Vec<_> = (0..21)
        .map(|i| failed(&format!("f{i}"), i * SEC, IP, Some("unknown")))
        .collect();
    let out = run(&mut d, &events);
    let actions: Vec<_> = out
        .iter()
        .filter(|o| matches!(o, Output::Action(_)))
        .collect();
    assert_eq!(actions.len(), 1);
    assert!(matches!(
        &actions[0],
        Output::Action(Action {
            kind: ActionKind::BlockIp { .. },
            ..
        })
    ));
    let Output::Alert(a) = &out[2] else { panic!() };
    assert_eq!(a.user_id, None);
}

#[test]
fn window_edges_are_exact() {
    // 6 failures: the 6th exactly 10 min after the 1st sees only 5 → low.
    let mut d = detector();
    let mut events: Vec<_> = (0..5)
        .map(|i| failed(&format!("f{i}"), i * SEC, IP, None))
        .collect();
    events.push(failed("f5", 10 * MIN, IP, None));
    assert!(alerts(&run(&mut d, &events)).is_empty());

    // A millisecond inside: 6 → medium.
    let mut d = detector();
    events[5] = failed("f5", 10 * MIN - 1, IP, None);
    assert_eq!(
        alerts(&run(&mut d, &events)),
        [(Rule::BruteForce, ThreatLevel::Medium, 50)]
    );
}

#[test]
fn the_episode_ends_when_the_window_empties() {
    let first = burst(6, IP, &["u"]);
    // Quiet for a whole window after the last failure (at 5 s): a new episode alerts again.
    let again: Vec<_> = (0..6)
        .map(|i| failed(&format!("g{i}"), 5 * SEC + 10 * MIN + i * SEC, IP, None))
        .collect();
    let mut d = detector();
    let out = run(&mut d, &[first.clone(), again].concat());
    assert_eq!(alerts(&out).len(), 2);

    // A millisecond less quiet: the same episode, and still medium → no second alert.
    let again: Vec<_> = (0..6)
        .map(|i| failed(&format!("g{i}"), 5 * SEC + 10 * MIN - 1 + i * SEC, IP, None))
        .collect();
    let mut d = detector();
    let out = run(&mut d, &[first, again].concat());
    assert_eq!(alerts(&out).len(), 1);
}

#[test]
fn credential_stuffing_needs_ten_distinct_users() {
    let users: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();

    let mut d = detector();
    let out = run(&mut d, &burst(10, IP, &users));
    use ThreatLevel::*;
    assert_eq!(
        alerts(&out),
        [
            (Rule::BruteForce, Medium, 50),
            (Rule::CredentialStuffing, High, 85)
        ]
    );
    let Output::Alert(cs) = &out[1] else { panic!() };
    assert_eq!(cs.count, Some(10));

    // 9 distinct users (10 failures): no credential stuffing.
    let mut d = detector();
    assert_eq!(
        alerts(&run(&mut d, &burst(10, IP, &users[..9]))),
        [(Rule::BruteForce, Medium, 50)]
    );

    // `unknown` is not a user id.
    let mut d = detector();
    let mut with_unknown = users[..9].to_vec();
    with_unknown.push("unknown");
    assert_eq!(alerts(&run(&mut d, &burst(10, IP, &with_unknown))).len(), 1);
}

#[test]
fn the_highest_score_wins_so_21_shuffled_users_still_give_one_alert_per_level() {
    let users: Vec<String> = (0..21).map(|i| format!("user{i}")).collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut d = detector();
    let out = run(&mut d, &burst(21, IP, &users));
    let levels: Vec<ThreatLevel> = alerts(&out).iter().map(|a| a.1).collect();
    assert_eq!(levels, MEDIUM_HIGH_CRITICAL);
}

const NEW_YORK: (f64, f64) = (40.7128, -74.0060);
const LONDON: (f64, f64) = (51.5074, -0.1278);

#[test]
fn impossible_travel() {
    let mut d = detector();
    let out = run(
        &mut d,
        &[
            login("l1", 0, "bob", NEW_YORK),
            login("l2", 60 * MIN, "bob", LONDON),
        ],
    );
    assert_eq!(
        alerts(&out),
        [(Rule::ImpossibleTravel, ThreatLevel::Critical, 90)]
    );
    let Output::Alert(a) = &out[0] else { panic!() };
    assert_eq!(a.evidence, ["l1", "l2"]);
    assert_eq!((a.window_start, a.window_end), (t(0), t(60 * MIN)));
    // Critical: the new location's ip is blocked and the account disabled.
    assert_eq!(out.len(), 4);

    // 7 hours is ~796 km/h: possible.
    let mut d = detector();
    let out = run(
        &mut d,
        &[
            login("l1", 0, "bob", NEW_YORK),
            login("l2", 420 * MIN, "bob", LONDON),
        ],
    );
    assert!(alerts(&out).is_empty());
}

#[test]
fn impossible_travel_thresholds_are_strict() {
    let (a, b) = ((0.0, 0.0), (0.0, 1.0));
    let km = geo::haversine_km(Geo { lat: 0.0, lon: 0.0 }, Geo { lat: 0.0, lon: 1.0 });
    let run_with = |distance: f64, speed: f64| {
        let settings = SecuritySettings {
            travel_min_distance_km: distance,
            travel_min_speed_kmh: speed,
            ..Default::default()
        };
        let mut d = with(&settings);
        // One hour apart: the speed in km/h is the distance in km.
        alerts(&run(
            &mut d,
            &[login("l1", 0, "u", a), login("l2", 60 * MIN, "u", b)],
        ))
        .len()
    };
    assert_eq!(run_with(km, 1.0), 0, "distance at the threshold");
    assert_eq!(run_with(km - 0.001, 1.0), 1, "distance just above");
    assert_eq!(run_with(1.0, km), 0, "speed at the threshold");
    assert_eq!(run_with(1.0, km - 0.001), 1, "speed just above");
    assert_eq!(run_with(km + 0.001, 1.0), 0, "distance just below");
}

#[test]
fn simultaneous_logins_far_apart_are_impossible() {
    let mut d = detector();
    let out = run(
        &mut d,
        &[login("l1", 0, "u", NEW_YORK), login("l2", 0, "u", LONDON)],
    );
    assert_eq!(alerts(&out).len(), 1);
}

#[test]
fn privilege_escalation() {
    let mut d = detector();
    let out = run(&mut d, &[grant("p1", 0, "carol", "admin", "dave")]);
    assert_eq!(
        alerts(&out),
        [(Rule::PrivilegeEscalation, ThreatLevel::High, 80)]
    );

    let mut d = detector();
    let out = run(&mut d, &[grant("p1", 0, "carol", "root", "carol")]);
    assert_eq!(
        alerts(&out),
        [(Rule::PrivilegeEscalation, ThreatLevel::Critical, 95)]
    );
    // No ip on the event: only the account is disabled.
    assert_eq!(out.len(), 2);
    assert!(matches!(
        &out[1],
        Output::Action(Action {
            kind: ActionKind::DisableAccount { .. },
            ..
        })
    ));

    let mut d = detector();
    assert!(run(&mut d, &[grant("p1", 0, "carol", "editor", "carol")]).is_empty());
}

#[test]
fn unusual_access_after_an_established_baseline() {
    let baseline: Vec<_> = (0..20)
        .map(|i| act(&format!("a{i}"), i * SEC, "erin", "10.0.0.1", "ua-1"))
        .collect();

    // 19 actions: not yet established, a new ip and agent say nothing.
    let mut d = detector();
    let out = run(
        &mut d,
        &[
            &baseline[..19],
            &[act("x", 30 * SEC, "erin", "10.9.9.9", "ua-2")],
        ]
        .concat(),
    );
    assert!(alerts(&out).is_empty());

    // 20 actions, then a new ip and a new agent: medium.
    let mut d = detector();
    let out = run(
        &mut d,
        &[
            &baseline[..],
            &[act("x", 30 * SEC, "erin", "10.9.9.9", "ua-2")],
        ]
        .concat(),
    );
    assert_eq!(
        alerts(&out),
        [(Rule::UnusualAccess, ThreatLevel::Medium, 50)]
    );

    // Only a new ip: low, no alert.
    let mut d = detector();
    let out = run(
        &mut d,
        &[
            &baseline[..],
            &[act("x", 30 * SEC, "erin", "10.9.9.9", "ua-1")],
        ]
        .concat(),
    );
    assert!(alerts(&out).is_empty());
}

#[test]
fn failed_attempts_do_not_teach_the_baseline() {
    let mut events: Vec<_> = (0..20)
        .map(|i| act(&format!("a{i}"), i * SEC, "erin", "10.0.0.1", "ua-1"))
        .collect();
    events.push(obs(
        InputKind::UserAction,
        "attacker",
        25 * SEC,
        json!({"user_id": "erin", "action": "login_attempt", "outcome": "failure",
               "ip_address": "10.9.9.9", "user_agent": "ua-2"}),
    ));
    events.push(act("x", 30 * SEC, "erin", "10.9.9.9", "ua-2"));
    let mut d = detector();
    assert_eq!(
        alerts(&run(&mut d, &events)),
        [(Rule::UnusualAccess, ThreatLevel::Medium, 50)]
    );
}

#[test]
fn unusual_volume_and_the_score_ceiling() {
    let settings = SecuritySettings {
        unusual_volume_above: 30,
        ..Default::default()
    };
    let mut d = with(&settings);
    let mut events: Vec<_> = (0..30)
        .map(|i| act(&format!("a{i}"), i * SEC, "erin", "10.0.0.1", "ua-1"))
        .collect();
    assert!(alerts(&run(&mut d, &events)).is_empty());
    // The 31st in the window, from a new ip and agent: volume and novelty, capped at 60.
    events = vec![act("a30", 31 * SEC, "erin", "10.9.9.9", "ua-2")];
    assert_eq!(
        alerts(&run(&mut d, &events)),
        [(Rule::UnusualAccess, ThreatLevel::Medium, 60)]
    );
}

#[test]
fn late_events_within_grace_are_placed_and_judged_beyond_it_are_not() {
    // The 21 failures arrive with the first one last, 20 s late: still one critical.
    let mut events = burst(21, IP, &["u"]);
    let first = events.remove(0);
    events.push(first);
    let mut d = detector();
    let out = run(&mut d, &events);
    let levels: Vec<ThreatLevel> = alerts(&out).iter().map(|a| a.1).collect();
    assert_eq!(levels, MEDIUM_HIGH_CRITICAL);
    let Output::Alert(critical) = &out[2] else {
        panic!()
    };
    assert_eq!(critical.causation_id, "f0", "raised by the late event");
    assert_eq!(
        critical.window_end,
        t(20 * SEC),
        "judged at the window it completes"
    );

    // The same first failure 2 min + 1 ms behind the newest: too late, not judged.
    let mut events = burst(20, IP, &["u"]);
    events.push(failed("late", 19 * SEC - 2 * MIN - 1, IP, Some("u")));
    let mut d = detector();
    let out = run(&mut d, &events);
    assert_eq!(alerts(&out).len(), 2);
    assert_eq!(d.stats().too_late, 1);

    // Exactly at the grace limit: judged, and it completes the 21 of the window ending at 19 s.
    let mut events = burst(20, IP, &["u"]);
    events.push(failed("late", 19 * SEC - 2 * MIN, IP, Some("u")));
    let mut d = detector();
    let out = run(&mut d, &events);
    assert_eq!(d.stats().too_late, 0);
    assert_eq!(alerts(&out).last().unwrap().1, ThreatLevel::Critical);
}

#[test]
fn replay_rebuilds_state_without_emitting_and_ids_are_reproduced() {
    let events = burst(21, IP, &["u"]);
    let mut live = detector();
    let all = run(&mut live, &events);

    // A restart after 15 events: those are replayed silently, the rest judged live.
    let mut d = detector();
    for e in &events[..15] {
        assert!(d.observe(e, Mode::Replay, wall()).is_empty());
    }
    let rest = run(&mut d, &events[15..]);
    assert_eq!(
        alerts(&rest),
        [(Rule::BruteForce, ThreatLevel::Critical, 95)]
    );
    assert_eq!(rest, all[2..], "same alert, same ids, same actions");
    assert_eq!(d.stats().suppressed, 2);

    // Replaying everything already judged emits nothing at all.
    let mut d = detector();
    for e in &events {
        assert!(d.observe(e, Mode::Replay, wall()).is_empty());
    }
    assert!(run(&mut d, &[failed("f21", 21 * SEC, IP, Some("u"))]).is_empty());
}

#[test]
fn the_wall_clock_lifts_blocks_and_leaves_event_time_alone() {
    let mut d = detector();
    let out = run(&mut d, &burst(21, IP, &["u"]));
    assert!(out.iter().any(|o| matches!(o, Output::Block(_))));
    let expiry = 20 * SEC + 60 * MIN;
    assert!(d.lift_expired(t(expiry)).is_empty(), "not before expiry");
    assert_eq!(
        d.lift_expired(t(expiry + 1)),
        [Output::Unblock {
            ip: IP.into(),
            expires_at: t(expiry),
        }]
    );
    assert!(d.lift_expired(t(expiry + 2)).is_empty(), "exactly once");
    assert_eq!(d.tracked().1, 0);
    // Event time did not move: the window of the burst is still open, so a 22nd failure a
    // second after the 21st is judged in it (no new alert in the episode), and the key
    // was not evicted as idle by the late wall clock.
    assert_eq!(d.tracked().0, 1);
    assert!(run(&mut d, &[failed("f22", 21 * SEC, IP, Some("u"))]).is_empty());
    // An event that is old by the wall clock is not too late either.
    assert_eq!(d.stats().too_late, 0);
    // Event time passing the expiry later emits no second tombstone.
    assert!(run(&mut d, &[failed("x", expiry + 5 * SEC, OTHER, None)]).is_empty());
}

#[test]
fn the_blocklist_tombstone_goes_out_after_expiry() {
    let mut d = detector();
    run(&mut d, &burst(21, IP, &["u"]));
    // The block expires one hour after the 21st failure (at 20 s).
    let expiry = 20 * SEC + 60 * MIN;
    assert!(run(&mut d, &[failed("x", expiry, OTHER, None)]).is_empty());
    let out = run(&mut d, &[failed("y", expiry + 1, OTHER, None)]);
    assert_eq!(
        out,
        [Output::Unblock {
            ip: IP.into(),
            expires_at: t(expiry),
        }]
    );
    assert_eq!(out[0].to_cloudevent(), None);
    // advance_to lifts blocks without an event; nothing more is blocked.
    assert!(
        d.advance_to(t(expiry + 2 * 60 * MIN), Mode::Live)
            .is_empty()
    );
}

#[test]
fn memory_is_bounded_in_keys_and_events() {
    let settings = SecuritySettings {
        max_keys: 50,
        max_events_per_key: 30,
        unusual_volume_above: 20,
        ..Default::default()
    };
    let mut d = with(&settings);
    for i in 0..1000 {
        d.observe(
            &failed(
                &format!("f{i}"),
                i * SEC,
                &format!("10.0.{}.{}", i / 256, i % 256),
                None,
            ),
            Mode::Live,
            wall(),
        );
    }
    assert!(d.tracked().0 <= 50);
    // One ip hammering: counts saturate at the per-key cap, alerts still come once.
    let out = run(
        &mut d,
        &(0..500)
            .map(|i| failed(&format!("h{i}"), 1000 * SEC + i, HOT, None))
            .collect::<Vec<_>>(),
    );
    assert_eq!(alerts(&out).len(), 3);
}

#[test]
fn idle_keys_are_evicted_by_event_time() {
    let mut d = detector();
    d.observe(&failed("a", 0, "198.51.100.1", None), Mode::Live, wall());
    assert_eq!(d.tracked().0, 1);
    d.observe(
        &failed("b", 61 * MIN, "198.51.100.2", None),
        Mode::Live,
        wall(),
    );
    assert_eq!(d.tracked().0, 1);
    assert_eq!(d.evicted_keys(), 1);
}

#[test]
fn the_same_input_gives_the_same_output() {
    let users = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"];
    let mut events = burst(30, IP, &users);
    events.push(login("l1", 0, "bob", NEW_YORK));
    events.push(login("l2", MIN, "bob", LONDON));
    let (mut d1, mut d2) = (detector(), detector());
    assert_eq!(run(&mut d1, &events), run(&mut d2, &events));
}

#[test]
fn failures_without_an_ip_and_other_security_events_raise_nothing() {
    let mut d = detector();
    let mut events: Vec<_> = (0..30)
        .map(|i| {
            obs(
                InputKind::SecurityEvent,
                &format!("s{i}"),
                i * SEC,
                json!({"event_type": "failed_login", "user_id": "u"}),
            )
        })
        .collect();
    events.push(obs(
        InputKind::SecurityEvent,
        "x",
        0,
        json!({"event_type": "port_scan", "source_ip": IP}),
    ));
    assert!(run(&mut d, &events).is_empty());
}

/// Each alert's (rule, level, source_ip).
fn alerted_sources(out: &[Output]) -> Vec<(Rule, ThreatLevel, Option<String>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Alert(a) => Some((a.rule, a.level, a.source_ip.clone())),
            _ => None,
        })
        .collect()
}

/// 21 failures, the i-th from `ips[i % ips.len()]`.
fn burst_from(ips: &[&str]) -> Vec<Observation> {
    (0..21)
        .map(|i| failed(&format!("f{i}"), i * SEC, ips[i as usize % ips.len()], None))
        .collect()
}

#[test]
fn ips_are_compared_in_canonical_form() {
    use ThreatLevel::*;
    for (spellings, source) in [
        (["2001:DB8::1", "2001:db8::1"], "2001:db8::/64"),
        (["10.0.0.1", "::ffff:10.0.0.1"], "10.0.0.1"),
        (["::FFFF:10.0.0.1", "10.0.0.1"], "10.0.0.1"),
    ] {
        let mut d = detector();
        let out = run(&mut d, &burst_from(&spellings));
        let source = Some(source.to_owned());
        assert_eq!(
            alerted_sources(&out),
            [
                (Rule::BruteForce, Medium, source.clone()),
                (Rule::BruteForce, High, source.clone()),
                (Rule::BruteForce, Critical, source.clone())
            ],
            "{spellings:?} are one source"
        );
    }
}

#[test]
fn two_addresses_in_one_64_count_together_and_are_blocked_as_the_64() {
    let mut d = detector();
    let out = run(
        &mut d,
        &burst_from(&["2001:db8:1:2::1", "2001:db8:1:2:ffff::7", "2001:db8:1:2::3"]),
    );
    assert_eq!(alerts(&out).len(), 3);
    let block: Vec<Value> = out
        .iter()
        .filter(|o| o.stream() != OutputStream::Alerts)
        .map(|o| o.to_cloudevent().unwrap()["data"].clone())
        .collect();
    assert_eq!(block[0]["action"], "block_ip");
    assert_eq!(
        block[0]["ip"], "2001:db8:1:2::/64",
        "a CIDR a firewall consumes"
    );
    assert_eq!(block[1]["ip"], "2001:db8:1:2::/64", "the blocklist entry");
    let Some(Output::Block(entry)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(out.last().map(Output::key), Some("2001:db8:1:2::/64"));
    assert_eq!(entry.ip, "2001:db8:1:2::/64");

    // The next /64 is another source: 20 + 1 failures split over two /64s raise no critical.
    let mut d = detector();
    let mut events = burst(20, "2001:db8:1:2::1", &["u"]);
    events.push(failed("other", 20 * SEC, "2001:db8:1:3::1", None));
    let levels: Vec<ThreatLevel> = alerts(&run(&mut d, &events)).iter().map(|a| a.1).collect();
    assert_eq!(levels, [ThreatLevel::Medium, ThreatLevel::High]);
}

#[test]
fn text_that_is_no_ip_is_no_source_ip() {
    let mut d = detector();
    let out = run(&mut d, &burst(30, "hot", &["u"]));
    assert!(out.is_empty(), "never a key: {out:?}");
    assert_eq!(d.stats().unparsable_ips, 30);
    assert_eq!(d.tracked().0, 0);
    // The user-keyed rules still judge such an event; the alert has no source ip and no block.
    let mut d = detector();
    let out = run(&mut d, &[self_granted_root_from("not-an-ip")]);
    let Output::Alert(a) = &out[0] else { panic!() };
    assert_eq!(
        (a.rule, a.source_ip.as_deref()),
        (Rule::PrivilegeEscalation, None)
    );
    assert!(out.iter().all(|o| !matches!(o, Output::Block(_))));
    assert_eq!(d.stats().unparsable_ips, 1);
}

/// carol grants herself `root` (critical) from `ip`.
fn self_granted_root_from(ip: &str) -> Observation {
    obs(
        InputKind::UserAction,
        "p1",
        0,
        json!({"user_id": "carol", "action": "privilege_change", "outcome": "success",
               "ip_address": ip, "context": {"new_role": "root", "changed_by": "carol"}}),
    )
}

#[test]
fn user_keyed_alerts_name_the_address_and_block_its_64() {
    let mut d = detector();
    let out = run(&mut d, &[self_granted_root_from("2001:DB8:0:0:1::5")]);
    let Output::Alert(a) = &out[0] else { panic!() };
    assert_eq!(a.source_ip.as_deref(), Some("2001:db8::1:0:0:5"));
    assert_eq!(a.key, "carol");
    let Some(Output::Block(entry)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(entry.ip, "2001:db8::/64");
}

/// A failure dated 9999-01-01, received at `at`.
fn future_failure(id: &str, at: i64, ip: &str) -> Observation {
    let mut o = failed(id, at, ip, Some("u"));
    o.time = "9999-01-01T00:00:00Z".parse().unwrap();
    o.received_at(t(at))
}

#[test]
fn a_burst_spanning_a_far_future_event_still_alerts() {
    // 10 failures, one dated 9999-01-01, 10 more: all 21 are counted in one window.
    let mut events = burst(21, IP, &["u"]);
    events[10] = future_failure("f10", 10 * SEC, IP);
    let mut d = detector();
    let out = run(&mut d, &events);
    let levels: Vec<ThreatLevel> = alerts(&out).iter().map(|a| a.1).collect();
    assert_eq!(levels, MEDIUM_HIGH_CRITICAL);
    assert_eq!(d.stats().future_dated, 1);
    assert_eq!(
        d.stats().too_late,
        0,
        "the clock did not jump ahead of the burst"
    );
}

#[test]
fn future_dating_every_failure_hides_nothing() {
    // An attacker dates every failure far ahead: each is judged when it arrives.
    let events: Vec<_> = (0..21)
        .map(|i| future_failure(&format!("f{i}"), i * SEC, IP))
        .collect();
    let mut d = detector();
    let out = run(&mut d, &events);
    assert_eq!(alerts(&out).len(), 3);
    let Some(Output::Alert(critical)) = out
        .iter()
        .find(|o| matches!(o, Output::Alert(a) if a.level == ThreatLevel::Critical))
    else {
        panic!("{out:?}")
    };
    // Dated by when it was judged, never 9999.
    assert_eq!(critical.time, t(20 * SEC));
    assert_eq!(critical.window_end, t(20 * SEC));
    let Some(Output::Block(entry)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(entry.expires_at, t(20 * SEC + 60 * MIN));
    assert_eq!(d.stats().future_dated, 21);
}

#[test]
fn a_far_future_event_lifts_no_block_and_evicts_no_window() {
    let mut d = detector();
    run(&mut d, &burst(21, IP, &["u"]));
    assert_eq!(d.tracked(), (1, 1));
    // From another ip, received a second after the burst.
    let out = run(&mut d, &[future_failure("x", 21 * SEC, OTHER)]);
    assert!(out.is_empty(), "no tombstone: {out:?}");
    assert_eq!(
        d.tracked(),
        (2, 1),
        "the burst's window and block are still there"
    );
    // The burst's episode goes on: a 22nd failure alerts nothing new, and is not too late.
    assert!(run(&mut d, &[failed("f21", 22 * SEC, IP, Some("u"))]).is_empty());
    assert_eq!(d.stats().too_late, 0);
    // The block is lifted when its time comes, not before.
    assert!(d.lift_expired(t(20 * SEC + 60 * MIN)).is_empty());
    assert_eq!(d.lift_expired(t(20 * SEC + 60 * MIN + 1)).len(), 1);
}

#[test]
fn a_far_future_event_in_a_backlog_makes_no_later_event_too_late() {
    // A backlog judged long after it happened (received now, dated an hour ago), with one
    // failure dated 9999: it is judged at the partition's clock, so the rest still count.
    let received = t(60 * MIN);
    let mut events: Vec<Observation> = burst(21, IP, &["u"])
        .into_iter()
        .map(|o| o.received_at(received))
        .collect();
    events[10] = future_failure("f10", 60 * MIN, IP);
    let mut d = detector();
    let levels: Vec<ThreatLevel> = alerts(&run(&mut d, &events)).iter().map(|a| a.1).collect();
    assert_eq!(levels, MEDIUM_HIGH_CRITICAL);
    assert_eq!(d.stats().too_late, 0);
}

#[test]
fn a_block_raised_by_a_future_dated_event_lasts_from_its_receipt() {
    // The partition's clock is stale (its last legitimate event is 2 h old); the attacker's
    // future-dated burst is judged at that clock, but the block lasts an hour from receipt.
    let mut d = detector();
    run(&mut d, &[failed("old", 0, OTHER, None)]);
    let events: Vec<_> = (0..21)
        .map(|i| future_failure(&format!("f{i}"), 120 * MIN + i * SEC, IP))
        .collect();
    let out = run(&mut d, &events);
    let Some(Output::Block(entry)) = out.last() else {
        panic!("{out:?}")
    };
    assert_eq!(entry.expires_at, t(180 * MIN + 20 * SEC));
    assert!(
        d.lift_expired(t(120 * MIN + 21 * SEC)).is_empty(),
        "not lifted at once"
    );
}

#[test]
fn the_skew_is_measured_from_when_an_event_was_received_or_the_wall_clock() {
    let skew = 5 * MIN;
    // Dated exactly the skew ahead of its receipt: in time, and it moves the clock.
    let mut d = detector();
    run(&mut d, &burst(21, IP, &["u"]));
    let ahead = failed("ahead", 20 * SEC + skew, OTHER, None).received_at(t(20 * SEC));
    run(&mut d, &[ahead]);
    assert_eq!(d.stats().future_dated, 0);
    // A millisecond more is future-dated.
    let mut d = detector();
    let ahead = failed("ahead", 20 * SEC + skew + 1, OTHER, None).received_at(t(20 * SEC));
    run(&mut d, &[ahead]);
    assert_eq!(d.stats().future_dated, 1);
    // A receipt time ahead of the wall clock does not widen the allowance.
    let mut d = detector();
    let ahead = failed("ahead", 10 * MIN, OTHER, None).received_at(t(10 * MIN));
    d.observe(&ahead, Mode::Live, t(0));
    assert_eq!(d.stats().future_dated, 1);
    // The same event replayed later (a larger wall clock) is judged exactly as before.
    let mut d = detector();
    let ahead = failed("ahead", 20 * SEC + skew + 1, OTHER, None).received_at(t(20 * SEC));
    d.observe(&ahead, Mode::Replay, wall());
    assert_eq!(d.stats().future_dated, 1);
}

#[test]
fn ids_are_keyed_by_the_secret() {
    let events = burst(21, IP, &["u"]);
    let ids = |secret: IdSecret| -> Vec<String> {
        let mut d = Detector::new(&SecuritySettings::default(), secret).unwrap();
        run(&mut d, &events)
            .iter()
            .filter_map(|o| o.to_event().map(|e| e.id))
            .collect()
    };
    let dev = ids(IdSecret::development());
    assert_eq!(dev, ids(IdSecret::development()), "deterministic");
    let other = ids(IdSecret::from_bytes([9; 32]));
    assert_eq!(dev.len(), other.len());
    assert!(dev.iter().zip(&other).all(|(a, b)| a != b));
}

#[test]
fn long_user_ids_are_bounded_and_stay_distinct() {
    // Ten distinct user ids of 100 kB each, differing only at their end.
    let users: Vec<String> = (0..10)
        .map(|i| format!("{}{i}", "u".repeat(100_000)))
        .collect();
    let users: Vec<&str> = users.iter().map(String::as_str).collect();
    let mut d = detector();
    let out = run(&mut d, &burst(10, IP, &users));
    assert_eq!(
        alerts(&out),
        [
            (Rule::BruteForce, ThreatLevel::Medium, 50),
            (Rule::CredentialStuffing, ThreatLevel::High, 85)
        ],
        "still ten distinct users"
    );
    assert!(
        d.state_bytes() < 64 * 1024,
        "the state keeps bounded keys, not 1 MB of user ids: {}",
        d.state_bytes()
    );
    // A user-keyed rule keys a long user id by its bounded form; the alert names the user.
    let long = "v".repeat(10_000);
    let mut d = detector();
    let out = run(&mut d, &[grant("p1", 0, &long, "admin", "dave")]);
    let Output::Alert(a) = &out[0] else { panic!() };
    assert_eq!(a.key.len(), 256);
    assert_eq!(a.user_id.as_deref(), Some(long.as_str()));
}

#[test]
fn detector_state_stays_within_its_byte_budget() {
    let settings = SecuritySettings {
        max_state_bytes: 256 * 1024,
        ..Default::default()
    };
    let mut d = with(&settings);
    // Event ids are attacker-chosen too: 2 kB each, from 2000 ips.
    let pad = "e".repeat(2000);
    for i in 0..2000 {
        let ip = format!("10.1.{}.{}", i / 256, i % 256);
        d.observe(
            &failed(&format!("{pad}{i}"), i * SEC, &ip, None),
            Mode::Live,
            wall(),
        );
        assert!(
            d.state_bytes() <= 256 * 1024,
            "{} after {i}",
            d.state_bytes()
        );
    }
    assert!(d.evicted_keys() > 1000, "{}", d.evicted_keys());
    // The stalest went first: the newest ip is still tracked and still counts.
    let newest = "10.1.7.207";
    let out = run(
        &mut d,
        &(0..6)
            .map(|i| failed(&format!("n{i}"), 1999 * SEC + i, newest, None))
            .collect::<Vec<_>>(),
    );
    assert_eq!(alerts(&out).len(), 1, "6 + 1 failures: medium");
}
