//! Which connection makes room when the connection cap is reached.
//!
//! Why: the cap (`Limits::max_connections`) bounds file descriptors and memory, but a cap that counts
//! every open connection the same lets anyone who opens enough connections without finishing a request
//! (silent ones, or a slowloris dribbling its head) keep every other client in the backlog until the
//! header-read timeout closes theirs: ~520 idle connections from one client kept everyone else waiting up
//! to 20 s (issue 21). So at the cap a new connection is admitted by closing the connection that has been
//! quiet longest: one with no request in flight, ordered by when it became quiet (when it was accepted,
//! for one that has not completed a request head yet; when its last request ended, for a keep-alive one).
//!
//! This is nginx's answer (when its connections run out it closes the idle keep-alive ones first, and a
//! client retries a request on a keep-alive connection closed under it), extended to connections still
//! waiting for their first head, which is what such an attack holds: a legitimate client sends its head
//! in one round trip, so its connection is the newest quiet one, never the oldest, and is served. A
//! request in flight is never cut to make room: when every connection has one, new connections wait in
//! the backlog until one closes, as before. (Slow request bodies are the minimum body rate's to cut, see
//! `limits.rs`.)
//!
//! The open connections are kept in one map, touched when a connection opens and when it closes and
//! scanned only at the cap: a request costs nothing here, and the scan is linear in the cap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::limits::{Activity, QuietSignal};

/// The open connections, by the accept loop's count.
#[derive(Debug, Default)]
pub(crate) struct Open {
    connections: Mutex<Connections>,
    quiet: Arc<QuietSignal>,
}

#[derive(Debug, Default)]
struct Connections {
    next: u64,
    by_id: HashMap<u64, Activity>,
}

/// A connection's place in [`Open`]; leaves it when dropped (when the connection's task ends).
#[derive(Debug)]
pub(crate) struct Registered {
    open: Arc<Open>,
    id: u64,
}

impl Open {
    /// Registers a connection accepted now; returns its activity (quiet until its first request) and
    /// the guard that keeps it registered.
    pub fn register(self: &Arc<Self>) -> (Activity, Registered) {
        let activity = Activity::new(Arc::clone(&self.quiet));
        let mut c = self.lock();
        let id = c.next;
        c.next += 1;
        c.by_id.insert(id, activity.clone());
        drop(c);
        let registered = Registered {
            open: Arc::clone(self),
            id,
        };
        (activity, registered)
    }

    /// Asks the connection quiet longest (and not asked yet) to close; whether there was one.
    pub fn shed_one(&self) -> bool {
        let c = self.lock();
        let quietest = c
            .by_id
            .values()
            .filter(|a| !a.shed_asked())
            .filter_map(|a| a.quiet_since().map(|since| (since, a)))
            .min_by_key(|(since, _)| *since);
        quietest.is_some_and(|(_, a)| a.ask_to_shed())
    }

    /// Told when a connection becomes quiet (while someone waits for one) or refuses to close.
    pub fn quiet(&self) -> &QuietSignal {
        &self.quiet
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().by_id.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connections> {
        // The map is consistent after every statement: a panic elsewhere leaves nothing half-done.
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.open.lock().by_id.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connection_quiet_longest_goes_first_and_requests_in_flight_never() {
        let open = Arc::new(Open::default());
        // Accepted at 0 s, 1 s, 2 s.
        let (a, _ra) = open.register();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (b, _rb) = open.register();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (c, _rc) = open.register();
        // a has a request in flight from 3 s; b had one from 3 s to 5 s (quiet since 5 s); c never sent
        // one (quiet since 2 s).
        tokio::time::sleep(Duration::from_secs(1)).await;
        let in_flight = a.begin();
        let done = b.begin();
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(done);

        assert!(open.shed_one());
        assert!(c.shed_asked() && !b.shed_asked() && !a.shed_asked());
        // c is asked once; next comes b.
        assert!(open.shed_one());
        assert!(b.shed_asked() && !a.shed_asked());
        // a, busy, is never asked.
        assert!(!open.shed_one());
        drop(in_flight);
        assert!(open.shed_one());
        assert!(a.shed_asked());
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_refuses_can_be_asked_again_and_a_closed_one_is_forgotten() {
        let open = Arc::new(Open::default());
        let (a, ra) = open.register();
        assert!(open.shed_one());
        a.refuse_shed();
        assert!(!a.shed_asked());
        assert!(open.shed_one());
        drop(ra);
        assert_eq!(open.len(), 0);
        assert!(!open.shed_one());
    }
}
