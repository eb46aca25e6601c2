//! The database goes away for 30 seconds mid-stream: the sink pauses, retries, and once the
//! database is back every record is stored exactly once — nothing lost, nothing doubled.
//!
//! The outage is a TCP proxy between the sink and Cassandra that, for 30 s, resets every open
//! connection and refuses new ones: to the sink exactly what a stopped database looks like,
//! without stopping the Cassandra other tests on this machine are using. (The driver reaches
//! the node through the proxy: it keeps the contact point's port for the node it discovers.)

#[path = "sink_common.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::*;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy to `upstream` that can be cut: `set_down(true)` drops every connection and refuses
/// new ones until `set_down(false)`.
struct Proxy {
    addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy listener");
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (down_flag, cuts) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if down_flag.load(Ordering::SeqCst) {
                    drop(client); // refused, as far as the driver can tell
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut_rx = cuts.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut_rx.changed() => {} // dropping both ends resets the connection
                    }
                });
            }
        });
        Self { addr, down, cut }
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
        if down {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_second_database_outage_delays_but_loses_and_doubles_nothing() {
    let mut setup = SinkSetup::new("sink_outage").await;
    let proxy = Proxy::start(setup.config.store.nodes[0].clone()).await;
    setup.config.store.nodes = vec![proxy.addr.to_string()];
    // Fail fast inside the store so the harness's own retry/pause path is what carries the
    // outage (the store's retries would only stretch each attempt).
    setup.config.store.max_attempts = 2;
    setup.config.store.request_timeout_ms = 2_000;
    let t = setup.config.topics.clone();
    let users: Vec<String> = (0..40).map(|u| format!("outage-user-{u}")).collect();
    let first: Vec<Input> = (0..3_000).map(|i| user_action(i, &users[i % 40])).collect();
    produce(&setup.bootstrap, &t.user_action, &first).await;

    let (shutdown, task) = start_sink(&setup.config);
    let keyspace = setup.config.store.keyspace.clone();
    eventually("the sink to store something", async || {
        stored_or_zero(&keyspace).await > 0
    })
    .await;

    proxy.set_down(true);
    let at_cut = stored_or_zero(&keyspace).await;
    // Records keep arriving while the database is away.
    let second: Vec<Input> = (3_000..6_000)
        .map(|i| user_action(i, &users[i % 40]))
        .collect();
    produce(&setup.bootstrap, &t.user_action, &second).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = stored_or_zero(&keyspace).await;
    eprintln!("stored {at_cut} at the cut, {during} after 30 s without the database");
    assert!(
        !task.is_finished(),
        "the sink must survive an outage, not exit"
    );
    proxy.set_down(false);

    setup.wait_caught_up().await;
    assert_eq!(setup.stored_ids().await, 6_000, "every record, once");
    assert_eq!(count(&keyspace, "audit_general_by_user").await, 6_000);
    shutdown.trigger();
    task.await
        .expect("sink task")
        .expect("sink stopped cleanly");
    setup.drop_keyspace().await;
}
