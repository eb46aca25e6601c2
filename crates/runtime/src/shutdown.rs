//! Graceful shutdown, as in mini-redis: one [`Shutdown`] signal, cloned into every task.
//!
//! SIGTERM or SIGINT (or a test calling [`Shutdown::trigger`]) flips it once; consumer loops
//! check it between batches, finish and commit the batch in hand, close the consumer (leaving
//! the group, so its partitions move at once instead of after the session timeout) and return.

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable, level-triggered stop signal.
#[derive(Clone, Debug)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            receiver,
        }
    }

    /// Asks everything holding a clone to stop.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves once the signal is triggered (at once if it already was).
    pub async fn wait(&self) {
        let mut receiver = self.receiver.clone();
        // Only fails when every sender is gone, and `self` holds one.
        let _ = receiver.wait_for(|stop| *stop).await;
    }

    /// Triggers this signal on SIGTERM or SIGINT. Spawns a task; needs a Tokio runtime.
    pub fn on_signals(&self) -> std::io::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let shutdown = self.clone();
        tokio::spawn(async move {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "shutting down: finishing in-flight work");
            shutdown.trigger();
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn clones_see_the_trigger() {
        let a = Shutdown::new();
        let b = a.clone();
        assert!(!b.is_triggered());
        a.trigger();
        assert!(b.is_triggered());
        b.wait().await;
    }
}
