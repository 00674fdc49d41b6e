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

/// The server binary to drive: `chosen`, else this build's `tokenmint`.
pub fn server_exe(chosen: Option<&std::path::Path>) -> std::path::PathBuf {
    chosen.map_or_else(
        || std::path::PathBuf::from(env!("CARGO_BIN_EXE_tokenmint")),
        std::path::Path::to_path_buf,
    )
}

/// A loopback port free right now, and the base URL of a server bound to it.
pub fn free_port() -> anyhow::Result<(u16, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok((port, format!("http://127.0.0.1:{port}")))
}
