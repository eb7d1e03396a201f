//! SIGINT and SIGTERM, handled the same way by every command in every phase.
//!
//! One listener is installed before a command runs. A command that can settle into a safe
//! state when interrupted holds a [`Handling`] guard over that part and selects on
//! [`interrupted`]; the first signal then lets it settle (hold the canary where recorded,
//! or roll back with `--abort-on-interrupt`). Where no command holds a guard, the first
//! signal ends the process at once. The second signal always ends it at once. Either way
//! the message says what this run changed (from the client's write ledger) and how to
//! continue, and the exit code is [`crate::exit_code::INTERRUPTED`].

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use canary_kube::client::WriteLedger;
use tokio::sync::watch;

use crate::exit_code;

/// The listener's state, shared by the commands.
struct Listener {
    /// How many signals arrived so far.
    count: watch::Receiver<u32>,
    /// How many parts of a command are handling the first signal themselves.
    handlers: AtomicUsize,
}

static LISTENER: OnceLock<Listener> = OnceLock::new();

/// What the exit message needs to say.
pub struct LeftBehind {
    /// What this run changed.
    pub ledger: WriteLedger,
    /// The workload the command is about (`deploy/web`, `sts/db`, `ds/agent`), if any.
    pub workload: Option<String>,
    /// Its namespace.
    pub namespace: String,
}

impl LeftBehind {
    /// The lines printed when the process ends at once.
    fn message(&self, which: &str) -> String {
        if self.ledger.is_empty() {
            return format!(
                "{which}: leaving at once; nothing was changed (this run wrote nothing)"
            );
        }
        let next = match &self.workload {
            Some(workload) => format!(
                "; see `kubectl canary status {workload} -n {}`, then `kubectl canary promote` or `kubectl canary abort` continue from the record",
                self.namespace
            ),
            None => String::new(),
        };
        format!("{which}: leaving at once; {}{next}", self.ledger.summary())
    }
}

/// Installs the listener for SIGINT and SIGTERM (once; later calls do nothing).
pub fn install(left: LeftBehind) {
    let (send, count) = watch::channel(0u32);
    if LISTENER
        .set(Listener {
            count,
            handlers: AtomicUsize::new(0),
        })
        .is_err()
    {
        return;
    }
    tokio::spawn(async move {
        let mut received = 0u32;
        loop {
            let name = next_signal().await;
            received += 1;
            let _ = send.send(received);
            let listener = LISTENER.get().expect("installed above");
            if received >= 2 {
                eprintln!("{}", left.message(&format!("{name} again")));
                std::process::exit(exit_code::INTERRUPTED);
            }
            if listener.handlers.load(Ordering::SeqCst) == 0 {
                eprintln!("{}", left.message(&format!("interrupted ({name})")));
                std::process::exit(exit_code::INTERRUPTED);
            }
            eprintln!(
                "interrupted ({name}): settling into a safe state (a second signal leaves at once)..."
            );
        }
    });
}

/// Waits for SIGINT or SIGTERM; returns its name.
async fn next_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return "SIGINT";
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "interrupt"
    }
}

/// While alive, the first signal is left to the command (which selects on
/// [`interrupted`]) instead of ending the process.
pub struct Handling(());

impl Handling {
    /// Takes over the first signal for the guard's lifetime.
    pub fn begin() -> Self {
        if let Some(listener) = LISTENER.get() {
            listener.handlers.fetch_add(1, Ordering::SeqCst);
        }
        Handling(())
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        if let Some(listener) = LISTENER.get() {
            listener.handlers.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Resolves once a first signal has arrived (at once if one already has), so a signal
/// between two selects is not lost.
pub async fn interrupted() {
    match LISTENER.get() {
        Some(listener) => {
            let mut count = listener.count.clone();
            let _ = count.wait_for(|n| *n >= 1).await;
        }
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
