//! Child processes for tests that need a whole process of their own: `tokenmint serve`
//! (its own metrics recorder, its own start-up errors), `redis-server` and `postgres`
//! instances with their own settings (TLS). Each is killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const TOKENMINT: &str = env!("CARGO_BIN_EXE_tokenmint");

/// A child process, killed (and reaped) when dropped; its output is in `log`.
pub struct Process {
    child: Child,
    /// Standard output and error.
    pub log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `command`, its output going to `log`.
    pub fn spawn(mut command: Command, log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"));
        Self { child, log }
    }

    /// The exit status, if it has exited.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits up to `within` for it to exit; its status and output.
    pub async fn wait_exit(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return (status, self.output());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still running:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends it a signal (`STOP`, `CONT`...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{name}");
    }

    /// What it printed so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Waits until `port` accepts TCP connections, or `process` exits (a failure, with its
/// output).
pub async fn accepting(process: &mut Process, port: u16) {
    for _ in 0..300 {
        if let Some(status) = process.exited() {
            panic!("exited with {status} before serving:\n{}", process.output());
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("port {port} never opened:\n{}", process.output());
}

/// `tokenmint serve` on `port` with only `env` and the settings every test needs.
fn tokenmint_command(port: u16, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(TOKENMINT);
    command.arg("serve");
    tokenmint_env(&mut command, port, env);
    command
}

fn tokenmint_env(command: &mut Command, port: u16, env: &[(&str, String)]) {
    command
        .env_clear()
        .env("TOKENMINT_BIND", format!("127.0.0.1:{port}"))
        .env("TOKENMINT_LOG", "warn")
        .env(
            "TOKENMINT_KEY_ENCRYPTION_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
    for (name, value) in env {
        command.env(name, value);
    }
}

/// `tokenmint serve` with at most `descriptors` open files (`prlimit`, util-linux).
pub async fn tokenmint_with_descriptors(
    dir: &Path,
    env: &[(&str, String)],
    descriptors: u32,
) -> (Process, String) {
    let port = crate::helpers::free_port();
    let mut command = Command::new("/usr/bin/prlimit");
    command
        .arg(format!("--nofile={descriptors}:{descriptors}"))
        .arg(TOKENMINT)
        .arg("serve");
    tokenmint_env(&mut command, port, env);
    let log = dir.join(format!("tokenmint-{port}.log"));
    let mut process = Process::spawn(command, log);
    accepting(&mut process, port).await;
    (process, format!("http://127.0.0.1:{port}"))
}

/// `tokenmint serve` on a free port; the process and its base URL once it accepts.
pub async fn tokenmint(dir: &Path, env: &[(&str, String)]) -> (Process, String) {
    let port = crate::helpers::free_port();
    let log = dir.join(format!("tokenmint-{port}.log"));
    let mut process = Process::spawn(tokenmint_command(port, env), log);
    accepting(&mut process, port).await;
    (process, format!("http://127.0.0.1:{port}"))
}

/// `tokenmint serve` that is expected to refuse to start: what it printed.
pub async fn tokenmint_refusing(dir: &Path, env: &[(&str, String)]) -> String {
    let port = crate::helpers::free_port();
    let log = dir.join(format!("refusing-{port}.log"));
    let mut process = Process::spawn(tokenmint_command(port, env), log);
    let (status, output) = process.wait_exit(Duration::from_secs(30)).await;
    assert!(!status.success(), "it started:\n{output}");
    output
}

/// A throwaway `redis-server` on a free port with `args` added. Returns it and the port
/// that accepts connections (`port_arg` names it: `--port`, or `--tls-port`).
pub async fn redis_server(dir: &Path, port_arg: &str, args: &[String]) -> (Process, u16) {
    let port = crate::helpers::free_port();
    let mut command = Command::new("redis-server");
    command
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--dir", dir.to_str().unwrap()]);
    if port_arg != "--port" {
        command.args(["--port", "0"]);
    }
    command.arg(port_arg).arg(port.to_string()).args(args);
    let mut process = Process::spawn(command, dir.join(format!("redis-{port}.log")));
    accepting(&mut process, port).await;
    (process, port)
}
