//! `TEST_LOG`: the in-process servers' tracing output, shown on demand. Off by default, so
//! passing runs stay quiet; set it to see what the server did when a test fails.

use std::io::IsTerminal;
use std::sync::Once;

static INIT: Once = Once::new();

/// Installs the subscriber once per test binary when `TEST_LOG` is set: `TEST_LOG=1` (or
/// `true`) shows `info` and above, any other value is read as a filter
/// (`TEST_LOG=data_vault=debug`). Output goes through the test writer, so the harness keeps it
/// with the test that produced it.
pub fn init() {
    INIT.call_once(|| {
        let Ok(value) = std::env::var("TEST_LOG") else {
            return;
        };
        let directives = match value.trim() {
            "" | "1" | "true" => "info",
            other => other,
        };
        let filter = tracing_subscriber::EnvFilter::try_new(directives)
            .unwrap_or_else(|e| panic!("TEST_LOG={value:?} is not a tracing filter: {e}"));
        // Another subscriber (set by the harness or a test) wins; this one is a convenience.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(std::io::stdout().is_terminal())
            .try_init();
    });
}
