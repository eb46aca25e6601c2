//! Scaling out: instances in one consumer group split the input partitions, and an instance
//! joining mid-stream (a cooperative rebalance while records flow) loses and duplicates
//! nothing in the `read_committed` view.

use std::time::{Duration, Instant};

use auditflow_integration_tests::classifier::{
    Setup, actual_outputs, assigned_partitions, duplicated, expected_outputs, keyed_by_user,
    start_classifier, user_created,
};
use auditflow_integration_tests::kafka::{produce, wait_caught_up};
use auditflow_integration_tests::metrics::metric_sum;
use auditflow_integration_tests::stack::DEADLINE;

/// Waits until the instances own every partition between them, each at least one.
async fn wait_for_split(instances: &[&auditflow_runtime::Metrics], partitions: u64) {
    let started = Instant::now();
    loop {
        let counts: Vec<u64> = instances.iter().map(|m| assigned_partitions(m)).collect();
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
    let first = user_created("grp", 0..600);
    produce(&setup.bootstrap, &setup.input, &keyed_by_user(&first, 0)).await;

    let (stop_a, metrics_a, _, task_a) = start_classifier(&setup.config);
    let (stop_b, metrics_b, _, task_b) = start_classifier(&setup.config);
    wait_for_split(&[&metrics_a, &metrics_b], 6).await;

    let second = user_created("grp", 600..1200);
    produce(&setup.bootstrap, &setup.input, &keyed_by_user(&second, 600)).await;
    let (stop_c, metrics_c, _, task_c) = start_classifier(&setup.config);
    let third = user_created("grp", 1200..1800);
    produce(&setup.bootstrap, &setup.input, &keyed_by_user(&third, 1200)).await;
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
    assert_eq!(duplicated(&actual), 0, "duplicated outputs");
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
