//! Group commit: items of one kind of write, queued by concurrent requests, run together
//! on one database connection (in one transaction, or in one statement) and answered
//! each on its own once that has committed.
//!
//! A write of its own pays a commit (and, on PostgreSQL, a round trip and a statement's
//! set-up) for a few rows; under load those fixed costs were most of a refresh's time on
//! the database. Here whoever finds the group idle hands it to a database thread; that
//! thread takes what has queued (up to a bound), runs it, answers, and if more has queued
//! meanwhile puts itself back at the end of the threads' queue, behind other jobs. So a
//! lone request runs at once, alone, and under load the group grows by itself to what
//! arrives during one run: nothing waits for a timer, and nothing else is starved.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::job::{self, JobState};
use super::{Db, DbConnection, LostConnection as _, StoreError};

/// Runs a group on one connection: one answer per item, in the items' order, or one
/// error for the whole group (nothing of it committed).
pub type RunGroup<I, O> = fn(&mut DbConnection, Vec<I>) -> Result<Vec<O>, StoreError>;

/// A queue of items of one kind, run together: see the module doc.
pub struct Group<I, O> {
    db: Db,
    max: usize,
    run: RunGroup<I, O>,
    queue: Mutex<Queue<I, O>>,
}

struct Queue<I, O> {
    waiting: VecDeque<Waiting<I, O>>,
    /// A database thread has (or is about to have) the group.
    draining: bool,
}

struct Waiting<I, O> {
    item: I,
    state: JobState,
    answer: oneshot::Sender<Result<O, StoreError>>,
}

impl<I: Send + 'static, O: Send + 'static> Group<I, O> {
    /// A group on `db`'s connections and threads, at most `max` items per run.
    pub fn new(db: Db, max: usize, run: RunGroup<I, O>) -> Arc<Self> {
        Arc::new(Self {
            db,
            max: max.max(1),
            run,
            queue: Mutex::new(Queue {
                waiting: VecDeque::new(),
                draining: false,
            }),
        })
    }

    /// Runs `item` with whatever else is queued, and answers once that has committed.
    /// Bounded like [`Db::run`]: an item still queued after the database timeout is
    /// given up and never runs; one that has started is waited for, since it may commit.
    pub async fn run(self: &Arc<Self>, item: I) -> Result<O, StoreError> {
        let state = JobState::default();
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push_back(Waiting {
                item,
                state: state.clone(),
                answer,
            });
            !std::mem::replace(&mut queue.draining, true)
        };
        if start {
            self.schedule();
        }
        let answer = job::await_job(&state, self.db.timeout, answered).await?;
        // A dropped answer: the threads are gone.
        answer.unwrap_or_else(|_| Err(StoreError::Other("the group's run gave no answer".into())))
    }

    fn lock(&self) -> MutexGuard<'_, Queue<I, O>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn schedule(self: &Arc<Self>) {
        let group = self.clone();
        if !self.db.threads.spawn(move || group.drain_once()) {
            // The threads are gone: dropping the answers tells everyone waiting.
            let mut queue = self.lock();
            queue.waiting.clear();
            queue.draining = false;
        }
    }

    /// One run, on a database thread; then back in the threads' queue if more came.
    fn drain_once(self: Arc<Self>) {
        let (items, answers): (Vec<I>, Vec<_>) = {
            let mut queue = self.lock();
            let mut taken = (Vec::new(), Vec::new());
            while taken.0.len() < self.max
                && let Some(waiting) = queue.waiting.pop_front()
            {
                if waiting.state.start() {
                    taken.0.push(waiting.item);
                    taken.1.push(waiting.answer);
                }
            }
            taken
        };
        if !items.is_empty() {
            self.run_once(items, answers);
        }
        let more = {
            let mut queue = self.lock();
            queue.draining = !queue.waiting.is_empty();
            queue.draining
        };
        if more {
            self.schedule();
        }
    }

    fn run_once(&self, items: Vec<I>, answers: Vec<oneshot::Sender<Result<O, StoreError>>>) {
        let outcome = match self.db.pool.get() {
            Err(e) => Err(StoreError::Unavailable(Box::new(e))),
            Ok(mut pooled) => {
                let run = self.run;
                let outcome = job::with_writer(&self.db.writer, || {
                    std::panic::catch_unwind(AssertUnwindSafe(|| run(&mut pooled.conn, items)))
                });
                match outcome {
                    Ok(outcome) => {
                        if outcome.as_ref().is_err_and(|e| e.is_lost_connection()) {
                            pooled.lost = true;
                        }
                        outcome
                    }
                    Err(_) => Err(job::panicked("group")),
                }
            }
        };
        match outcome {
            Ok(outs) => {
                for (answer, out) in answers.into_iter().zip(outs) {
                    let _ = answer.send(Ok(out));
                }
            }
            Err(e) => {
                let lost = e.is_lost_connection();
                let message = e.to_string();
                for answer in answers {
                    let error = if lost {
                        StoreError::Unavailable(message.clone().into())
                    } else {
                        StoreError::Other(message.clone().into())
                    };
                    let _ = answer.send(Err(error));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::DatabaseUrl;

    fn db(dir: &tempfile::TempDir) -> Db {
        let url = DatabaseUrl::Sqlite(dir.path().join("group.db"));
        Db::new(&url, 1, Duration::from_secs(5)).unwrap()
    }

    /// Each run answers the item with (item, size of its run).
    fn sizes(_conn: &mut DbConnection, items: Vec<u32>) -> Result<Vec<(u32, usize)>, StoreError> {
        #[allow(clippy::disallowed_methods)] // a database thread, not an async worker
        std::thread::sleep(Duration::from_millis(20));
        let n = items.len();
        Ok(items.into_iter().map(|i| (i, n)).collect())
    }

    #[tokio::test]
    async fn a_lone_item_runs_alone_and_a_burst_runs_in_groups_each_answered_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let group = Group::new(db(&dir), 16, sizes);
        assert_eq!(group.run(7).await.unwrap(), (7, 1));

        let answers = futures_util::future::join_all((0..40).map(|i| group.run(i))).await;
        let answers: Vec<(u32, usize)> = answers.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            answers.iter().map(|a| a.0).collect::<Vec<_>>(),
            (0..40).collect::<Vec<_>>(),
            "every caller gets its own item's answer"
        );
        assert!(answers.iter().all(|a| a.1 <= 16), "bounded: {answers:?}");
        assert!(answers.iter().any(|a| a.1 > 1), "grouped: {answers:?}");
    }

    fn fails(_conn: &mut DbConnection, _items: Vec<u32>) -> Result<Vec<u32>, StoreError> {
        Err(StoreError::Other("no".into()))
    }

    #[allow(clippy::panic)]
    fn panics(_conn: &mut DbConnection, _items: Vec<u32>) -> Result<Vec<u32>, StoreError> {
        panic!("boom")
    }

    #[tokio::test]
    async fn a_failed_or_panicked_run_answers_everyone_with_an_error_and_the_group_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let failing = Group::new(db(&dir), 16, fails);
        let answers = futures_util::future::join_all((0..5).map(|i| failing.run(i))).await;
        assert!(answers.iter().all(Result::is_err));
        assert!(failing.run(1).await.is_err(), "still answering");

        let panicking = Group::new(db(&dir), 16, panics);
        let answers = futures_util::future::join_all((0..5).map(|i| panicking.run(i))).await;
        assert!(answers.iter().all(Result::is_err));
        assert!(
            panicking.run(1).await.is_err(),
            "still answering, not stuck"
        );
    }
}
