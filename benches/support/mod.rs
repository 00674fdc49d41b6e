//! What the benchmarks share: the server they start as a child process.

use std::process::Child;
use std::time::Duration;

/// A server child process, killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Server {
    /// Waits (up to 10 s) until the server answers `/healthz` at `base`.
    pub async fn wait_until_up(&self, client: &reqwest::Client, base: &str) -> anyhow::Result<()> {
        for _ in 0..200 {
            if client.get(format!("{base}/healthz")).send().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("the server did not start")
    }
}
