//! The security monitor against the real Kafka: a burst of failed logins with a restart in the
//! middle. The replacement rebuilds the window from the partitions' recent history before it
//! judges new records, so the `read_committed` view holds exactly one medium, one high and one
//! critical alert, one `block_ip`, one `disable_account` and one blocklist entry — nothing
//! lost, nothing twice.

use auditflow_core::classify::Classified;
use auditflow_core::detect::IdSecret;
use auditflow_core::{Classifier, Config};
use auditflow_integration_tests::classifier::Setup;
use auditflow_integration_tests::kafka::{Input, Read, produce, read_committed, wait_caught_up};
use auditflow_integration_tests::processes::{Started, start_in_process};
use auditflow_runtime::{Metrics, kafka::topics};
use serde_json::Value;

/// Starts the security monitor in this process: its shutdown switch and task.
fn start_monitor(config: &Config) -> Started<auditflow_security_monitor::Error> {
    let metrics = Metrics::new().expect("metrics");
    start_in_process(config, &metrics, |cx| {
        Box::pin(auditflow_security_monitor::run(cx))
    })
    .started()
}

/// Runs a monitor until its group has committed everything on its inputs, then stops it.
async fn run_monitor_until_caught_up(setup: &Setup) {
    let (shutdown, task) = start_monitor(&setup.config);
    let group = format!("{}security-monitor", setup.config.kafka.group_prefix);
    for topic in [
        &setup.config.topics.security_event,
        &setup.config.topics.user_action,
    ] {
        wait_caught_up(&setup.bootstrap, &group, topic).await;
    }
    shutdown.trigger();
    task.await.expect("monitor task").expect("monitor ran");
}

/// What the classifier makes of `n` failed logins by one user from one ip, as Kafka inputs of
/// the monitor, `(topic, record)` in order.
fn failed_logins(config: &Config, range: std::ops::Range<u32>) -> Vec<(String, Input)> {
    let classifier = Classifier::new(config).expect("classifier");
    let mut out = Vec::new();
    for i in range {
        let login = format!(
            r#"{{"id":"login-{i}","source":"auth","type":"user.login.attempt","time":"2024-05-01T10:00:{i:02}Z",
                "data":{{"user_id":"alice","success":false,"ip_address":"203.0.113.5"}}}}"#
        );
        let Classified::Emit(outputs) =
            classifier.classify_structured(login.as_bytes(), chrono::Utc::now())
        else {
            panic!("a failed login is audited");
        };
        for o in outputs {
            out.push((o.topic, (Some(o.key), o.value, Vec::new())));
        }
    }
    out
}

async fn produce_all(bootstrap: &str, records: Vec<(String, Input)>) {
    for (topic, record) in records {
        produce(bootstrap, &topic, &[record]).await;
    }
}

fn data(records: &[Read]) -> Vec<Value> {
    records.iter().map(|r| r.json()["data"].clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_burst_alerts_and_acts_exactly_once() {
    let mut setup = Setup::new("secmon_restart", 1).await;
    let secret_file = std::env::temp_dir().join(format!("{}.id-secret", setup.prefix));
    std::fs::write(&secret_file, SECRET).expect("writing the id secret");
    setup.config.security.id_secret_file = Some(secret_file.clone());
    topics::ensure_topics(
        &setup.config.kafka,
        &topics::planned_topics(&setup.config.topics),
    )
    .await
    .expect("creating the topics");

    // 15 failures: medium (6th) and high (11th) are raised before the restart.
    produce_all(&setup.bootstrap, failed_logins(&setup.config, 0..15)).await;
    run_monitor_until_caught_up(&setup).await;
    let topics = &setup.config.topics;
    let before = read_committed(&setup.bootstrap, &topics.alerts);
    assert_eq!(before.len(), 2, "{:#?}", data(&before));

    // 6 more after the restart: the 21st completes the critical window only if the first 15
    // were rebuilt from history.
    produce_all(&setup.bootstrap, failed_logins(&setup.config, 15..21)).await;
    run_monitor_until_caught_up(&setup).await;

    let alerts = read_committed(&setup.bootstrap, &topics.alerts);
    let levels: Vec<Value> = data(&alerts).iter().map(|d| d["level"].clone()).collect();
    assert_eq!(
        levels,
        ["medium", "high", "critical"],
        "{:#?}",
        data(&alerts)
    );
    let critical = alerts[2].json();
    assert_eq!(critical["data"]["count"], 21);
    assert_eq!(alerts[2].key.as_deref(), Some("203.0.113.5"));
    assert_eq!(alerts[2].header("ce_type"), Some("security.alert"));

    let actions = read_committed(&setup.bootstrap, &topics.actions);
    // Keyed by ip and by user, so on different partitions: compare as a set.
    let mut kinds: Vec<String> = data(&actions)
        .iter()
        .map(|d| d["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["block_ip", "disable_account"]);
    for action in &actions {
        assert_eq!(action.json()["causationid"], critical["id"]);
    }
    // The burst is from 2024, so its block expired long ago by the wall clock: the monitor's
    // tick lifts it within a second or so, and may or may not have before it was stopped. One
    // upsert, then at most one tombstone.
    let (blocklist, tombstones): (Vec<Read>, Vec<Read>) =
        read_committed(&setup.bootstrap, &topics.blocklist)
            .into_iter()
            .partition(|r| !r.value.is_empty());
    assert_eq!(blocklist.len(), 1);
    assert_eq!(blocklist[0].key.as_deref(), Some("203.0.113.5"));
    assert!(tombstones.len() <= 1, "{tombstones:?}");
    assert!(
        tombstones
            .iter()
            .all(|t| t.key.as_deref() == Some("203.0.113.5"))
    );

    // The same ids as the monitor's engine gives offline, with no restart at all.
    let secret = IdSecret::from_hex(SECRET).unwrap();
    let mut offline =
        auditflow_core::detect::Detector::new(&setup.config.security, secret).unwrap();
    let mut ids = Vec::new();
    for (_, (_, value, _)) in failed_logins(&setup.config, 0..21) {
        let event =
            auditflow_core::envelope::parse_structured(&value, &setup.config.limits).unwrap();
        let now = chrono::Utc::now();
        if let Some(obs) = auditflow_core::detect::Observation::from_event(&event, now).unwrap() {
            for out in offline.observe(&obs, auditflow_core::detect::Mode::Live, now) {
                if let Some(event) = out.to_event() {
                    ids.push(event.id);
                }
            }
        }
    }
    let online: Vec<String> = [&alerts, &actions, &blocklist]
        .iter()
        .flat_map(|records| {
            records
                .iter()
                .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        })
        .collect();
    let mut sorted = (online, ids);
    sorted.0.sort();
    sorted.1.sort();
    assert_eq!(sorted.0, sorted.1);

    // And ids computed here, independently of the engine, from the derivation as
    // docs/topics-and-records.md (Ids) describes it: HMAC-SHA256 under the secret of the
    // length-prefixed parts, the first 16 bytes as a UUID v8.
    let critical_id = keyed_id(&[
        "alert",
        "brute_force",
        "203.0.113.5",
        "critical",
        "2024-05-01T09:50:20Z",
        "2024-05-01T10:00:20Z",
    ]);
    assert_eq!(critical["id"], critical_id.as_str());
    let block_ip = actions
        .iter()
        .map(Read::json)
        .find(|a| a["data"]["action"] == "block_ip")
        .unwrap();
    assert_eq!(
        block_ip["id"],
        keyed_id(&["block_ip", &critical_id]).as_str()
    );
    assert_eq!(
        blocklist[0].json()["id"],
        keyed_id(&["blocklist", &critical_id]).as_str()
    );
    std::fs::remove_file(&secret_file).ok();
}

/// The id secret of this test (`[security] id_secret_file`).
const SECRET: &str = "3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b";

fn keyed_id(parts: &[&str]) -> String {
    use hmac::{Hmac, Mac};
    let key: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&SECRET[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(b"auditflow/security-monitor/ids/v1");
    for part in parts {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    let tag = mac.finalize().into_bytes();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&tag[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(bytes).to_string()
}
