//! Group commit: the appends waiting for one conversation are committed together, by
//! the first of them to get there, with one flush.

use std::collections::HashMap;
use std::hash::Hash;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, Condvar, Mutex};

use chatvault_core::backend::{Error, Result};

use crate::error::{BACKEND, poisoned};

/// The queues of the conversations that have appends waiting, by key (a conversation id).
#[derive(Debug)]
pub(crate) struct GroupCommit<K, T, R> {
    queues: Mutex<HashMap<K, Arc<Queue<T, R>>>>,
}

/// The appends waiting for one conversation: the first waiter commits everyone's.
#[derive(Debug)]
struct Queue<T, R> {
    state: Mutex<QueueState<T, R>>,
    done: Condvar,
}

#[derive(Debug)]
struct QueueState<T, R> {
    next: u64,
    waiting: Vec<(u64, T)>,
    leader: bool,
    results: HashMap<u64, Result<R>>,
}

impl<T, R> QueueState<T, R> {
    fn idle(&self) -> bool {
        self.waiting.is_empty() && !self.leader && self.results.is_empty()
    }
}

impl<K: Hash + Eq + Clone, T, R> GroupCommit<K, T, R> {
    /// No queues yet.
    pub(crate) fn new() -> Self {
        GroupCommit {
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Submits `item` to `key`'s queue and waits for its result. The first waiter to find
    /// no commit running takes every waiting item, in arrival order, and passes them to
    /// `commit` (which returns one result per item, in their order); the others wait for
    /// it. A panic in `commit` fails every item of its batch, then goes on in the waiter
    /// that ran it.
    pub(crate) fn submit(
        &self,
        key: &K,
        item: T,
        commit: impl Fn(Vec<T>) -> Vec<Result<R>>,
    ) -> Result<R> {
        let queue = {
            let mut queues = self.queues.lock().map_err(|_| poisoned())?;
            Arc::clone(queues.entry(key.clone()).or_insert_with(|| {
                Arc::new(Queue {
                    state: Mutex::new(QueueState {
                        next: 0,
                        waiting: Vec::new(),
                        leader: false,
                        results: HashMap::new(),
                    }),
                    done: Condvar::new(),
                })
            }))
        };
        let result = Self::wait(&queue, item, commit);
        if let Ok(mut queues) = self.queues.lock()
            && let Some(q) = queues.get(key)
            && Arc::ptr_eq(q, &queue)
            && Arc::strong_count(q) == 2
            && q.state.lock().is_ok_and(|s| s.idle())
        {
            queues.remove(key);
        }
        result
    }

    fn wait(queue: &Queue<T, R>, item: T, commit: impl Fn(Vec<T>) -> Vec<Result<R>>) -> Result<R> {
        let mut state = queue.state.lock().map_err(|_| poisoned())?;
        let ticket = state.next;
        state.next += 1;
        state.waiting.push((ticket, item));
        loop {
            if let Some(result) = state.results.remove(&ticket) {
                return result;
            }
            if state.leader {
                state = queue.done.wait(state).map_err(|_| poisoned())?;
                continue;
            }
            state.leader = true;
            let (tickets, batch): (Vec<u64>, Vec<T>) =
                std::mem::take(&mut state.waiting).into_iter().unzip();
            drop(state);
            let outcome = catch_unwind(AssertUnwindSafe(|| commit(batch)));
            state = queue.state.lock().map_err(|_| poisoned())?;
            state.leader = false;
            match outcome {
                Ok(results) => state.results.extend(tickets.into_iter().zip(results)),
                Err(panic) => {
                    for t in tickets {
                        state.results.insert(
                            t,
                            Err(Error::backend(
                                BACKEND,
                                io::Error::other("an append panicked"),
                            )),
                        );
                    }
                    queue.done.notify_all();
                    drop(state);
                    resume_unwind(panic);
                }
            }
            queue.done.notify_all();
        }
    }
}
