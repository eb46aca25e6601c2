//! Scaling out: instances in one consumer group split the input partitions, and an instance
//! joining mid-stream (a cooperative rebalance while records flow) loses and duplicates
//! nothing in the `read_committed` view.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use auditflow_integration_tests::classifier::{
    Setup, actual_outputs, expected_outputs, start_classifier,
};
use auditflow_integration_tests::kafka::{Input, produce, wait_caught_up};
use auditflow_integration_tests::metrics::{metric, metric_sum};
use auditflow_integration_tests::stack::DEADLINE;

fn user_created(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range
        .map(|i| {
            format!(r#"{{"id":"grp-{i}","source":"users","type":"user.created","time":"2026-11-20T10:00:00Z","data":{{"user_id":"user-{i}"}}}}"#)
                .into_bytes()
        })
        .collect()
}

fn keyed(values: &[Vec<u8>], from: usize) -> Vec<Input> {
    // Keyed by user, so records spread over every partition.
    values
        .iter()
        .enumerate()
        .map(|(i, v)| (Some(format!("user-{}", from + i)), v.clone(), Vec::new()))
        .collect()
}

fn assigned(metrics: &auditflow_runtime::Metrics) -> u64 {
    metric(
        &metrics.render(),
        r#"auditflow_assigned_partitions{service="classifier"}"#,
    )
}

/// Waits until the instances own every partition between them, each at least one.
async fn wait_for_split(instances: &[&auditflow_runtime::Metrics], partitions: u64) {
    let started = Instant::now();
    loop {
        let counts: Vec<u64> = instances.iter().map(|m| assigned(m)).collect();
        if counts.iter().all(|c| *c > 0) && counts.iter().sum::<u64>() == partitions {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "partitions never split: {counts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_split_partitions_and_a_joiner_loses_and_duplicates_nothing() {
    let setup = Setup::new("cls_group", 6).await;
    let first = user_created(0..600);
    produce(&setup.bootstrap, &setup.input, &keyed(&first, 0)).await;

    let (stop_a, metrics_a, _, task_a) = start_classifier(&setup.config);
    let (stop_b, metrics_b, _, task_b) = start_classifier(&setup.config);
    wait_for_split(&[&metrics_a, &metrics_b], 6).await;

    let second = user_created(600..1200);
    produce(&setup.bootstrap, &setup.input, &keyed(&second, 600)).await;
    let (stop_c, metrics_c, _, task_c) = start_classifier(&setup.config);
    let third = user_created(1200..1800);
    produce(&setup.bootstrap, &setup.input, &keyed(&third, 1200)).await;
    wait_for_split(&[&metrics_a, &metrics_b, &metrics_c], 6).await;
    wait_caught_up(&setup.bootstrap, &setup.group(), &setup.input).await;

    for stop in [&stop_a, &stop_b, &stop_c] {
        stop.trigger();
    }
    for task in [task_a, task_b, task_c] {
        task.await
            .expect("classifier task")
            .expect("classifier ran");
    }

    let inputs: Vec<Vec<u8>> = first.into_iter().chain(second).chain(third).collect();
    let expected = expected_outputs(&setup.config, &inputs);
    let actual = actual_outputs(&setup);
    let ids: BTreeSet<&str> = actual
        .iter()
        .filter_map(|(_, _, v)| v["id"].as_str())
        .collect();
    assert_eq!(ids.len(), actual.len(), "duplicated outputs");
    assert_eq!(actual.len(), 1800, "lost outputs");
    assert_eq!(actual, expected);

    // Each record was counted once, by whichever instance committed it.
    let consumed: u64 = [&metrics_a, &metrics_b, &metrics_c]
        .iter()
        .map(|m| {
            metric_sum(
                &m.render(),
                "auditflow_consumed_records_total",
                r#"service="classifier""#,
            )
        })
        .sum();
    assert_eq!(consumed, 1800);
}
