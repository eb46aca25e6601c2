//! `kill -9` mid-stream: the real `auditflow run classifier` binary is killed without warning,
//! restarted, and every expected output is present exactly once in the `read_committed` view.
//! The inputs stream in across the kill and the last of them are produced only after it, so
//! the test asserts that the kill came after the first commit and before the last input: it
//! cannot silently become a test without a crash.
//! The restarted instance is then stopped with SIGTERM and must exit 0.
//!
//! The binary is the one `cargo build`/`cargo test --workspace` put next to this test
//! (`target/<profile>/auditflow`); `cargo xtask test` builds it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auditflow_integration_tests::classifier::{Setup, expected_outputs};
use auditflow_integration_tests::kafka::{
    Input, Stream, committed, read_committed, wait_caught_up,
};
use auditflow_integration_tests::processes::{ChildGuard, terminate};
use auditflow_integration_tests::stack::DEADLINE;

fn spawn(setup: &Setup) -> ChildGuard {
    let t = &setup.config.topics;
    ChildGuard::spawn(
        setup
            .run_command("classifier")
            // A TOML literal string: no escaping of the regex's backslashes.
            .env(
                "AUDITFLOW_TOPICS__CLASSIFIER_INPUTS",
                format!("['{}']", t.classifier_inputs[0]),
            ),
    )
}

fn events(range: std::ops::Range<usize>) -> Vec<Input> {
    range
        .map(|i| {
            let value = format!(r#"{{"id":"crash-{i}","source":"users","type":"user.created","time":"2026-11-20T10:00:00Z","data":{{"user_id":"user-{i}"}}}}"#);
            (Some(format!("user-{i}")), value.into_bytes(), Vec::new())
        })
        .collect()
}

const TOTAL: usize = 25_000;
/// Inputs produced only after the kill.
const HELD: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_yields_every_output_exactly_once() {
    let setup = Setup::new("cls_crash", 3).await;
    // The inputs stream in across the kill, the last HELD only after it: the kill lands
    // mid-stream whatever the machine's speed.
    let stream = Stream::start(&setup.bootstrap, &setup.input, events(0..TOTAL), HELD);

    let mut victim = spawn(&setup);
    // Kill as soon as some transactions have committed.
    let started = Instant::now();
    while committed(&setup.bootstrap, &setup.group(), &setup.input)
        .values()
        .sum::<i64>()
        == 0
    {
        assert!(
            started.elapsed() < DEADLINE,
            "the classifier never committed"
        );
        if let Ok(Some(status)) = victim.try_wait() {
            panic!("the classifier exited early: {status}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    victim.kill().expect("SIGKILL");
    victim.wait().expect("reaping");
    let produced = stream.produced();
    let at_kill: i64 = committed(&setup.bootstrap, &setup.group(), &setup.input)
        .values()
        .sum();
    eprintln!("killed after {at_kill} of {TOTAL} records were committed, {produced} produced");
    // The kill landed mid-stream: after the first commit, before the last input existed.
    assert!(
        at_kill > 0 && at_kill < TOTAL as i64 && at_kill <= produced as i64,
        "not a kill mid-stream: {at_kill} of {TOTAL} committed, {produced} produced"
    );
    stream.finish().await;

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
    let inputs: Vec<Vec<u8>> = events(0..TOTAL).into_iter().map(|(_, v, _)| v).collect();
    let expected: BTreeSet<String> = expected_outputs(&setup.config, &inputs)
        .into_iter()
        .map(|(_, _, v)| v["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(expected.len(), TOTAL);
    let missing: Vec<&String> = expected.difference(&ids).collect();
    let unexpected: Vec<&String> = ids.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{} outputs lost (e.g. {:?}), {} unexpected (e.g. {:?})",
        missing.len(),
        &missing[..missing.len().min(5)],
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
}
