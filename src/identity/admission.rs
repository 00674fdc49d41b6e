//! Fair admission to the password-hashing threads.
//!
//! A login waits here for a free hashing thread. Logins with a device proof (and the
//! service's own hashes) wait in one queue served first; the others wait in one queue
//! per client address (IPv4 /32, IPv6 /64), served round-robin, so each address gets its
//! turn whatever the others send. When the waiting room is full, a newcomer takes the
//! place of the newest waiter of the longest queue if that queue is longer than the
//! newcomer's own would be; otherwise it is refused. So no set of addresses holds more
//! than its share, and one waiting login from a fresh address always finds a place.
//!
//! Every operation takes one short lock and touches at most the waiting room (bounded by
//! its capacity).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// Who is waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// A login with a valid device proof: served before any anonymous one.
    Device,
    /// The service's own work (hashing a new password): served first, never refused.
    Internal,
    /// An anonymous login from this address key.
    Address(String),
}

/// The waiting room was full and this login was not owed a place (or lost its place to
/// a login from an address with fewer waiting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused;

struct Waiter {
    id: u64,
    grant: oneshot::Sender<bool>,
}

#[derive(Default)]
struct State {
    running: usize,
    waiting: usize,
    first: VecDeque<Waiter>,
    addresses: HashMap<String, VecDeque<Waiter>>,
    ring: VecDeque<String>,
    next_id: u64,
}

impl State {
    /// The next waiter to run: the first queue, then the address queues in turn.
    fn next_waiter(&mut self) -> Option<Waiter> {
        if let Some(waiter) = self.first.pop_front() {
            return Some(waiter);
        }
        while let Some(address) = self.ring.pop_front() {
            let Some(queue) = self.addresses.get_mut(&address) else {
                continue;
            };
            let waiter = queue.pop_front();
            if queue.is_empty() {
                self.addresses.remove(&address);
            } else {
                self.ring.push_back(address);
            }
            if waiter.is_some() {
                return waiter;
            }
        }
        None
    }

    /// A thread is free: hand it to the next waiter, or leave it idle.
    fn release(&mut self) {
        while let Some(waiter) = self.next_waiter() {
            self.waiting -= 1;
            if waiter.grant.send(true).is_ok() {
                return;
            }
        }
        self.running = self.running.saturating_sub(1);
    }

    fn queue_len(&self, address: &str) -> usize {
        self.addresses.get(address).map_or(0, VecDeque::len)
    }

    /// The address with the most waiting.
    fn longest(&self) -> Option<(String, usize)> {
        self.addresses
            .iter()
            .max_by_key(|(_, q)| q.len())
            .map(|(a, q)| (a.clone(), q.len()))
    }

    fn forget_address(&mut self, address: &str) {
        if self.addresses.get(address).is_some_and(VecDeque::is_empty) {
            self.addresses.remove(address);
            self.ring.retain(|a| a != address);
        }
    }

    /// Refuses the newest waiter of `address`.
    fn evict_newest(&mut self, address: &str) {
        if let Some(waiter) = self.addresses.get_mut(address).and_then(VecDeque::pop_back) {
            self.waiting -= 1;
            // Its receiver may be gone already; it is refused either way.
            let _ = waiter.grant.send(false);
        }
        self.forget_address(address);
    }

    /// Takes the waiter `id` out of its queue, if it is still in one.
    fn withdraw(&mut self, id: u64, class: &Class) {
        let queue = match class {
            Class::Address(address) => self.addresses.get_mut(address),
            Class::Device | Class::Internal => Some(&mut self.first),
        };
        let Some(queue) = queue else { return };
        let before = queue.len();
        queue.retain(|w| w.id != id);
        if queue.len() < before {
            self.waiting -= 1;
        }
        if let Class::Address(address) = class {
            self.forget_address(address);
        }
    }
}

/// The waiting room of `threads` hashing threads.
#[derive(Clone)]
pub struct Admissions {
    state: Arc<Mutex<State>>,
    threads: usize,
}

/// The right to run one hash now; the thread goes to the next waiter when it is dropped.
pub struct Permit {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Permit")
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        lock(&self.state).release();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// A waiter's place; leaving it (the request went away) gives the place up, and a
/// thread granted in the meantime goes on to the next waiter.
struct Waiting {
    state: Arc<Mutex<State>>,
    id: u64,
    class: Class,
    answer: Option<oneshot::Receiver<bool>>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(mut answer) = self.answer.take() else {
            return;
        };
        let mut state = lock(&self.state);
        match answer.try_recv() {
            Ok(true) => state.release(),
            Ok(false) => {}
            Err(_) => state.withdraw(self.id, &self.class),
        }
    }
}

impl std::fmt::Debug for Admissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admissions")
            .field("threads", &self.threads)
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl Admissions {
    /// The waiting room of `threads` threads.
    pub fn new(threads: usize) -> Self {
        Self {
            state: Arc::default(),
            threads: threads.max(1),
        }
    }

    /// Logins running or waiting.
    pub fn in_flight(&self) -> usize {
        let state = lock(&self.state);
        state.running + state.waiting
    }

    /// Waits for a thread, with at most `capacity` waiting in all.
    pub async fn admit(&self, class: Class, capacity: usize) -> Result<Permit, Refused> {
        let (id, answer) = {
            let mut state = lock(&self.state);
            if state.running < self.threads && state.waiting == 0 {
                state.running += 1;
                return Ok(Permit {
                    state: self.state.clone(),
                });
            }
            if state.waiting >= capacity {
                let own = match &class {
                    Class::Address(address) => Some(state.queue_len(address)),
                    Class::Device | Class::Internal => None,
                };
                match (state.longest(), own, &class) {
                    (_, _, Class::Internal) => {}
                    (Some((longest, _)), None, _) => state.evict_newest(&longest),
                    (Some((longest, len)), Some(own), _) if len > own + 1 => {
                        state.evict_newest(&longest);
                    }
                    _ => return Err(Refused),
                }
            }
            let (grant, answer) = oneshot::channel();
            state.next_id += 1;
            let id = state.next_id;
            let waiter = Waiter { id, grant };
            match &class {
                Class::Device | Class::Internal => state.first.push_back(waiter),
                Class::Address(address) => {
                    let queue = state.addresses.entry(address.clone()).or_default();
                    queue.push_back(waiter);
                    if queue.len() == 1 {
                        state.ring.push_back(address.clone());
                    }
                }
            }
            state.waiting += 1;
            (id, answer)
        };
        let mut waiting = Waiting {
            state: self.state.clone(),
            id,
            class,
            answer: Some(answer),
        };
        let granted = match waiting.answer.as_mut() {
            Some(answer) => answer.await,
            None => Ok(false),
        };
        // Answered: nothing left for the guard to do.
        waiting.answer = None;
        match granted {
            Ok(true) => Ok(Permit {
                state: self.state.clone(),
            }),
            _ => Err(Refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn address(a: &str) -> Class {
        Class::Address(a.to_owned())
    }

    /// Starts `admit` and lets it reach its place in the queue.
    async fn queued(
        admissions: &Admissions,
        class: Class,
        capacity: usize,
    ) -> tokio::task::JoinHandle<Result<Permit, Refused>> {
        let a = admissions.clone();
        let handle = tokio::spawn(async move { a.admit(class, capacity).await });
        tokio::time::sleep(Duration::from_millis(5)).await;
        handle
    }

    #[tokio::test]
    async fn addresses_take_turns_and_device_proofs_go_first() {
        let admissions = Admissions::new(1);
        let running = admissions.admit(address("a"), 100).await.unwrap();
        let mut order = Vec::new();
        for class in [
            address("a"),
            address("a"),
            address("a"),
            address("b"),
            Class::Device,
        ] {
            order.push(queued(&admissions, class, 100).await);
        }
        assert_eq!(admissions.in_flight(), 6);
        drop(running);
        // Served: the device proof, then a, b, a, a.
        let served = [4usize, 0, 3, 1, 2];
        let mut handles: Vec<Option<_>> = order.into_iter().map(Some).collect();
        for index in served {
            let permit = handles[index].take().unwrap().await.unwrap().unwrap();
            for (other, handle) in handles.iter().enumerate() {
                if let Some(handle) = handle {
                    assert!(!handle.is_finished(), "{other} ran before {index}");
                }
            }
            drop(permit);
        }
        assert_eq!(admissions.in_flight(), 0);
    }

    #[tokio::test]
    async fn a_full_room_makes_place_for_an_address_with_fewer_waiting() {
        let admissions = Admissions::new(1);
        let _running = admissions.admit(address("a"), 3).await.unwrap();
        let flood: Vec<_> = [
            queued(&admissions, address("a"), 3).await,
            queued(&admissions, address("a"), 3).await,
            queued(&admissions, address("a"), 3).await,
        ]
        .into();
        // Full: "a" is refused outright, "b" takes the newest place of "a".
        assert_eq!(
            admissions.admit(address("a"), 3).await.unwrap_err(),
            Refused
        );
        let b = queued(&admissions, address("b"), 3).await;
        assert!(flood[2].is_finished(), "the newest of a was refused");
        assert!(!b.is_finished());
        // "c" finds a: 2, b: 1, c would be 1: a is longer by more than one, so c gets in
        // too; then "d" finds a: 1, b: 1, c: 1 and is refused.
        let c = queued(&admissions, address("c"), 3).await;
        assert!(flood[1].is_finished());
        assert!(!c.is_finished());
        assert_eq!(
            admissions.admit(address("d"), 3).await.unwrap_err(),
            Refused
        );
        // A device proof takes an anonymous place whatever the lengths.
        let device = queued(&admissions, Class::Device, 3).await;
        assert!(!device.is_finished());
        let finished = [flood[0].is_finished(), b.is_finished(), c.is_finished()];
        assert_eq!(finished.iter().filter(|f| **f).count(), 1, "{finished:?}");
    }

    #[tokio::test]
    async fn a_waiter_that_leaves_gives_its_place_up() {
        let admissions = Admissions::new(1);
        let running = admissions.admit(address("a"), 10).await.unwrap();
        let gone = queued(&admissions, address("b"), 10).await;
        gone.abort();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(admissions.in_flight(), 1);
        let next = queued(&admissions, address("c"), 10).await;
        drop(running);
        assert!(next.await.unwrap().is_ok());
        assert_eq!(admissions.in_flight(), 0);
    }
}
