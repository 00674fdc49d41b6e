//! Real clients: Chromium (puppeteer-core) and standard OAuth and JOSE libraries.

mod browser;
pub mod interop;

/// A driver script's verdict: it must have succeeded, and its last line of output is
/// JSON (what it saw), returned parsed.
fn verdict(script: &str, output: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n{stderr}\n{stdout}"
    );
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}
