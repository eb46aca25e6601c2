//! The chaos harness's short form (tests/support/chaos; `cargo xtask chaos` runs the long one):
//! every service as separate processes, several instances each, while a minute of seeded
//! traffic — lifecycles, attacks, garbage, both CloudEvents modes — is produced and every kind
//! of fault lands: `kill -9` and SIGTERM of instances, a rebalance storm, `kill -9` of the
//! broker and its restart, the database stopped for 30 s. Then every group must catch up (no
//! partition left stuck), no service may exit on its own, no transactional loop may go on
//! aborting, and the ledger must show
//! every expected output, dead letter, stored row, alert, action, block and causality edge
//! exactly once, `query` and `verify` agreeing.
//!
//! It kills the shared stack's broker and stops its database: it is one test in a binary of
//! its own, and cargo runs test binaries one at a time.

use auditflow_integration_tests::chaos::faults::Kind;
use auditflow_integration_tests::chaos::{self, Settings};
use auditflow_integration_tests::processes::auditflow_binary;
use auditflow_integration_tests::stack::{require_cql, require_kafka};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_loses_and_duplicates_nothing_under_every_fault() {
    require_kafka();
    require_cql();
    let settings = Settings::short(&auditflow_binary(), 11);
    let report = chaos::run(&settings)
        .await
        .unwrap_or_else(|e| panic!("the chaos run could not be carried out: {e}"));
    println!("{}", report.table());

    // The run did what it says: traffic of every family, every fault kind landed.
    for family in ["lifecycle", "attack", "garbage", "odd"] {
        assert!(
            report
                .inputs
                .get(&format!("family {family}"))
                .is_some_and(|n| *n > 0),
            "no {family} inputs: {:?}",
            report.inputs
        );
    }
    for kind in Kind::ALL {
        assert!(report.injected(kind) > 0, "no {kind:?} fault was injected");
    }
    assert!(
        report.rows.iter().all(|r| r.expected > 0),
        "a ledger row checks nothing: {:?}",
        report
            .rows
            .iter()
            .filter(|r| r.expected == 0)
            .map(|r| &r.what)
            .collect::<Vec<_>>()
    );
    assert!(report.passed(), "{}", report.problems().join("\n"));
    // A broker restart (or any other fault) makes no service exit on its own: its loops abort,
    // rewind and carry on.
    assert!(
        report.exits.is_empty(),
        "exited on their own: {:?}",
        report.exits
    );
    // What the services export for an operator's lag alert agrees: nothing left once caught up.
    assert_eq!(report.committed_lag.len(), 4, "{:?}", report.committed_lag);
    assert!(
        report.committed_lag.values().all(|lag| *lag == 0),
        "auditflow_consumer_committed_lag after catch-up: {:?}",
        report.committed_lag
    );
}
