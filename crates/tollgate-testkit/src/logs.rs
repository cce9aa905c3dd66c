//! [`capture_logs`]: what the code under test logs, for tests that check what is (and is
//! not) in it.

use std::sync::{Arc, Mutex, Once};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::format::FmtSpan;

/// Everything logged on this thread at `level` and above (spans' closings included, without
/// colours) while the returned guard lives; read it with [`CapturedLogs::text`].
///
/// A `#[tokio::test]` runs its tasks on its own thread, so this sees what its servers and
/// layers log. Unlike a bare `tracing::subscriber::set_default`, it also keeps the events of
/// tests running beside it from going missing: `tracing` decides once per process whether a
/// log statement is wanted, and a statement first reached on a thread with no subscriber
/// would be switched off for every thread. A do-nothing global subscriber, installed on the
/// first call, makes every thread answer "wanted".
///
/// ```
/// let (logs, _guard) = tollgate_testkit::capture_logs(tracing::Level::DEBUG);
/// tracing::debug!(key_id = "key_1", "API key verified");
/// tracing::trace!("below the level");
/// assert!(logs.text().contains("key_id=\"key_1\""));
/// assert!(!logs.text().contains("below the level"));
/// ```
pub fn capture_logs(level: tracing::Level) -> (CapturedLogs, DefaultGuard) {
    static WANTED_EVERYWHERE: Once = Once::new();
    WANTED_EVERYWHERE.call_once(|| {
        // Fails only when the test binary installed its own global subscriber: that one
        // answers for the threads without a subscriber, which is all that is needed.
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    // Statements first reached before this subscriber existed are asked again.
    tracing::callsite::rebuild_interest_cache();
    (logs, guard)
}

/// The text logged so far to a [`capture_logs`] subscriber.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Everything logged so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl std::io::Write for CapturedLogs {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_first_reached_on_a_thread_without_a_subscriber_is_still_captured() {
        fn statement() {
            tracing::debug!("the statement");
        }
        let (logs, _guard) = capture_logs(tracing::Level::DEBUG);
        // Another test's thread, with no subscriber, reaches it first.
        std::thread::spawn(statement).join().unwrap();
        statement();
        assert!(logs.text().contains("the statement"), "{}", logs.text());
    }
}
