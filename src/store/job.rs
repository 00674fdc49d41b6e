//! What [`Db::run`](super::Db::run) and [`Group::run`](super::group::Group::run) share:
//! the life of a queued job, its time limit, what a panic becomes, and the SQLite writer
//! lock of the database it runs on.
//!
//! A job is queued, then started by a database thread, or abandoned by its caller once
//! the database timeout has passed. A job abandoned while queued never starts; one that
//! has started is waited for, since it may commit. A panic in a job is a bug: it is
//! logged and its callers get an error (the thread, the pool and the process go on).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::StoreError;

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

/// A queued job's state, shared by its caller and the thread that takes it.
#[derive(Clone, Default)]
pub(super) struct JobState(Arc<AtomicU8>);

impl JobState {
    /// On the database thread: whether the job may run (its caller still waits for it).
    pub(super) fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, STARTED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// On the caller's side, after the timeout: whether the job was given up before it
    /// started (if not, it is running and must be waited for).
    fn abandon(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

/// Awaits a job's `answer`: a job not started within `timeout` is abandoned (it will
/// never run) and answers [`timed_out`].
pub(super) async fn await_job<T>(
    state: &JobState,
    timeout: Duration,
    answer: impl Future<Output = T>,
) -> Result<T, StoreError> {
    let mut answer = std::pin::pin!(answer);
    tokio::select! {
        answer = &mut answer => Ok(answer),
        () = tokio::time::sleep(timeout) => {
            if state.abandon() {
                return Err(timed_out());
            }
            Ok(answer.await)
        }
    }
}

/// The error of a job that found no connection in time.
pub(super) fn timed_out() -> StoreError {
    StoreError::Unavailable("timed out waiting for a database connection".into())
}

/// The error callers of a job that panicked get; the panic is logged once, here.
pub(super) fn panicked(kind: &'static str) -> StoreError {
    tracing::error!(kind, "a database job panicked");
    StoreError::Other("a database job panicked".into())
}

thread_local! {
    /// The writer lock of the database whose job this thread is running.
    static SQLITE_WRITER: RefCell<Option<Arc<Mutex<()>>>> = const { RefCell::new(None) };
}

/// Runs `f` (a job of one database) with that database's SQLite writer lock as the one
/// [`writer_lock`] takes.
pub(super) fn with_writer<R>(writer: &Arc<Mutex<()>>, f: impl FnOnce() -> R) -> R {
    /// Puts the previous lock back, after a panic too.
    struct Restore(Option<Arc<Mutex<()>>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SQLITE_WRITER.with(|w| *w.borrow_mut() = previous);
        }
    }
    let _restore = Restore(SQLITE_WRITER.with(|w| w.replace(Some(writer.clone()))));
    f()
}

/// Runs `f` (a SQLite write transaction) behind the other writers of the same database
/// in this process; outside a job there is no lock to take, and a write waits in SQLite's
/// busy handler only.
pub(super) fn as_sole_writer<R>(f: impl FnOnce() -> R) -> R {
    let Some(writer) = SQLITE_WRITER.with(|w| w.borrow().clone()) else {
        return f();
    };
    // Held until commit or rollback; a database thread, never across an await.
    let _writer = writer.lock().unwrap_or_else(|p| p.into_inner());
    f()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::store::{DatabaseUrl, Db, DbConnection, StoreError, write_transaction};

    fn db(dir: &tempfile::TempDir, name: &str) -> Db {
        Db::new(
            &DatabaseUrl::Sqlite(dir.path().join(name)),
            2,
            Duration::from_secs(5),
        )
        .unwrap()
    }

    fn begin_and_commit(conn: &mut DbConnection) -> Result<(), StoreError> {
        write_transaction(conn, |_| Ok::<_, StoreError>(()))
    }

    #[tokio::test]
    #[allow(clippy::panic)]
    async fn a_job_that_panics_answers_an_error_and_the_database_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = db(&dir, "panic.db");
        let answer: Result<(), StoreError> = db.run(|_| panic!("boom")).await;
        assert!(
            matches!(answer, Err(StoreError::Other(ref e)) if e.to_string().contains("panicked")),
            "{answer:?}"
        );
        db.run(begin_and_commit).await.unwrap();
    }

    /// Each database has its own writer lock: a write transaction held open on one does
    /// not hold up a write on another (with one lock per process this waits forever).
    #[tokio::test]
    async fn the_sqlite_writer_lock_belongs_to_its_database() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (db(&dir, "first.db"), db(&dir, "second.db"));
        let (done, wait) = mpsc::channel::<()>();
        let held = first.run(move |conn| {
            write_transaction(conn, |_| {
                wait.recv_timeout(Duration::from_secs(10))
                    .map_err(|_| StoreError::Other("the other database's write waited".into()))
            })
        });
        let other = async {
            second.run(begin_and_commit).await.unwrap();
            done.send(()).unwrap();
        };
        let (held, ()) = tokio::join!(held, other);
        held.unwrap();
    }
}
