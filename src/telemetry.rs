//! Structured logs (JSON lines on stderr), filtered by `TOKENMINT_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests start many apps).
pub fn init(filter: &str) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("TOKENMINT_LOG: {e}"))?;
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(false)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    Ok(())
}
