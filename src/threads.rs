//! A fixed set of named threads for blocking work (database calls, argon2), awaited from
//! async code.
//!
//! Tokio's blocking pool would do the work too, but each actix worker runs its own
//! runtime with its own blocking pool, and every pool grows a thread per waiting call:
//! under load the process held two dozen threads, each with its own C allocator arena
//! (SQLite's page cache). A fixed set keeps threads, arenas and memory bounded.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

type Job = Box<dyn FnOnce() + Send>;

/// Why a job gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The job panicked; the payload is handed back so the caller can resume the panic.
    #[error("the job panicked")]
    Panicked(Box<dyn Any + Send>),
    /// The threads are gone (the pool was dropped while the job waited).
    #[error("the worker threads are gone")]
    Gone,
}

/// `size` threads named `<name>-<i>`, taking jobs in arrival order. The threads end when
/// the last clone of the pool is dropped.
///
/// A positive `niceness` lowers their CPU priority by that much (Linux): argon2 runs at
/// +10, so that a login flood takes the CPU only when JWKS, refresh and token checks
/// leave it idle.
#[derive(Clone)]
pub struct Threads {
    jobs: mpsc::Sender<Job>,
}

impl Threads {
    /// Starts the threads.
    pub fn new(name: &str, size: usize, niceness: i32) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..size.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    set_niceness(niceness);
                    loop {
                        // The lock is held only while waiting; a job runs without it.
                        let job = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => break,
                        }
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Queues `f` to run on one of the threads and returns at once. A panic in `f` is
    /// caught and the thread lives on; `false` when the threads are gone.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) -> bool {
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(f)));
        });
        self.jobs.send(job).is_ok()
    }

    /// Runs `f` on one of the threads, inside the caller's tracing span, and awaits its
    /// answer. A panic in `f` is caught (the thread lives on) and returned.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, JobError> {
        let (done, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move || {
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(f)));
            let _ = done.send(result);
        });
        self.jobs.send(job).map_err(|_| JobError::Gone)?;
        match answer.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(panic)) => Err(JobError::Panicked(panic)),
            Err(_) => Err(JobError::Gone),
        }
    }
}

/// Raises the calling thread's nice value by `niceness` (at most to 19). On Linux it is a
/// per-thread attribute, set through `setpriority(PRIO_PROCESS, tid)`; lowering priority
/// needs no privilege.
#[cfg(target_os = "linux")]
fn set_niceness(niceness: i32) {
    if niceness == 0 {
        return;
    }
    let tid = rustix::thread::gettid();
    let result = rustix::process::getpriority_process(Some(tid)).and_then(|current| {
        rustix::process::setpriority_process(Some(tid), (current + niceness).min(19))
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, niceness, "could not set the priority of a worker thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn set_niceness(_niceness: i32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_named_threads_and_a_panic_spares_the_thread() {
        let threads = Threads::new("test-pool", 1, 0).unwrap();
        let name = threads
            .run(|| std::thread::current().name().map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(name.as_deref(), Some("test-pool-0"));

        let panicked = threads.run(|| panic!("boom")).await;
        assert!(matches!(panicked, Err(JobError::Panicked(_))));
        assert_eq!(threads.run(|| 41 + 1).await.unwrap(), 42, "still serving");
    }

    #[tokio::test]
    #[allow(clippy::disallowed_methods)] // the sleep runs on a pool thread, not an async worker
    async fn at_most_size_jobs_run_at_once() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let threads = Threads::new("test-bound", 2, 0).unwrap();
        let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let jobs = (0..8).map(|_| {
            let (running, peak) = (running.clone(), peak.clone());
            threads.run(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(20));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        for result in futures_util::future::join_all(jobs).await {
            result.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_threads_run_at_the_requested_niceness() {
        let niced = Threads::new("test-nice", 1, 10).unwrap();
        let niceness = niced
            .run(|| rustix::process::getpriority_process(Some(rustix::thread::gettid())))
            .await
            .unwrap()
            .unwrap();
        let ours = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(niceness, (ours + 10).min(19));
    }
}
