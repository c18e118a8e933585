//! Locking a `std::sync::Mutex` the one way picket does it everywhere.
//!
//! A panic while a guard is held poisons the mutex. The data behind picket's mutexes
//! (caches, maps of sessions, counters, a test clock) stays valid after any single
//! panic, so a poisoned lock is recovered instead of turning one failed request into a
//! panic in every later one.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock `mutex`, recovering the guard if an earlier holder panicked.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mutex_poisoned_by_a_panicking_holder_still_locks_with_its_data() {
        // Arrange: a holder panics mid-update, poisoning the mutex.
        let m = std::sync::Arc::new(Mutex::new(vec![1]));
        let held = m.clone();
        let _ = std::thread::spawn(move || {
            let mut v = held.lock().unwrap();
            v.push(2);
            panic!("a request failed while holding the lock");
        })
        .join();
        assert!(m.is_poisoned());

        // Act
        let mut v = lock(&m);
        v.push(3);

        // Assert: the later caller goes on with what the panicking one left.
        assert_eq!(*v, vec![1, 2, 3]);
    }
}
