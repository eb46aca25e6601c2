//! `kill -9` mid-stream: the real `auditflow run classifier` binary is killed without warning,
//! restarted, and every expected output is present exactly once in the `read_committed` view.
//! The restarted instance is then stopped with SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build`/`cargo test --workspace` put next to this test
//! (`target/<profile>/auditflow`); `cargo xtask test` builds it.

#[path = "classifier_common.rs"]
mod common;

use std::collections::BTreeSet;
use std::process::Child;
use std::time::{Duration, Instant};

use auditflow_integration_tests::terminate;
use common::*;

fn spawn(setup: &Setup) -> Child {
    let t = &setup.config.topics;
    setup
        .run_command("classifier")
        // A TOML literal string: no escaping of the regex's backslashes.
        .env(
            "AUDITFLOW_TOPICS__CLASSIFIER_INPUTS",
            format!("['{}']", t.classifier_inputs[0]),
        )
        .spawn()
        .expect("starting auditflow run classifier")
}

fn events(range: std::ops::Range<usize>) -> Vec<Input> {
    range
        .map(|i| {
            let value = format!(r#"{{"id":"crash-{i}","source":"users","type":"user.created","time":"2026-11-20T10:00:00Z","data":{{"user_id":"user-{i}"}}}}"#);
            (Some(format!("user-{i}")), value.into_bytes(), Vec::new())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_yields_every_output_exactly_once() {
    let setup = Setup::new("cls_crash", 3).await;
    let first = events(0..20_000);
    produce(&setup.bootstrap, &setup.input, &first).await;

    let mut victim = spawn(&setup);
    // Kill as soon as some transactions have committed.
    let started = Instant::now();
    let progress = loop {
        let done: i64 = committed(&setup.bootstrap, &setup.group(), &setup.input)
            .values()
            .sum();
        if done > 0 {
            break done;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the classifier never committed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaping");
    eprintln!(
        "killed after {progress} of {} records were committed",
        first.len()
    );

    let second = events(20_000..25_000);
    produce(&setup.bootstrap, &setup.input, &second).await;
    let mut survivor = spawn(&setup);
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;

    let exit = terminate(&mut survivor);
    assert_eq!(
        exit.code(),
        Some(0),
        "SIGTERM must stop the classifier cleanly"
    );

    let outputs = read_committed(&setup.bootstrap, &setup.config.topics.user_action);
    let ids: BTreeSet<String> = outputs
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(ids.len(), outputs.len(), "duplicated outputs");
    let inputs: Vec<Vec<u8>> = first.into_iter().chain(second).map(|(_, v, _)| v).collect();
    let expected: BTreeSet<String> = expected_outputs(&setup.config, &inputs)
        .into_iter()
        .map(|(_, _, v)| v["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(expected.len(), 25_000);
    assert_eq!(ids, expected, "lost outputs");
}
