//! A bounded memory of lookup answers, knowing nothing of what it remembers: [`super`] decides which
//! lookups are remembered, what each costs and what a write forgets.
//!
//! - Answers are kept per group (a repository) under a key, each trusted for `ttl` after the moment
//!   its query *started* ([`Fill`]).
//! - A write forgets what it changed in a group and bumps an epoch for the group's stripe; an answer
//!   whose fill began before that bump is not stored, so a lookup racing a write never stores the old
//!   answer. (Stripes: a write only drops the fills of the groups that share its stripe.)
//! - Entries are charged a cost, and beyond `max_bytes` the least recently used go first (CLOCK: one
//!   reference bit, a second chance).
//!
//! Why a `std::sync::Mutex` around one map: every critical section is a hash lookup and a clone, never
//! held across an `.await`; on a hit that is far cheaper than the query and the thread hop it replaces.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hashbrown::{Equivalent, HashMap};

/// Groups are spread over this many epochs.
const STRIPES: usize = 32;

/// The memory: groups `G` of answers `V` under keys `K`.
pub(super) struct Memory<G, K, V> {
    ttl: Duration,
    max_bytes: usize,
    /// Bumped by every forget; a fill remembers it before its query.
    epoch: AtomicU64,
    hasher: RandomState,
    state: Mutex<State<G, K, V>>,
}

/// The start of a fill: the epoch and the time before the query ([`Memory::begin`]).
#[derive(Clone, Copy)]
pub(super) struct Fill {
    epoch: u64,
    pub(super) started: Instant,
}

struct State<G, K, V> {
    groups: HashMap<G, HashMap<K, Entry<V>, RandomState>, RandomState>,
    /// Every entry in insertion order, for the CLOCK. A slot whose entry was replaced or removed is
    /// skipped when it comes up (its `id` no longer matches).
    clock: VecDeque<Slot<G, K>>,
    /// Entries in `groups`.
    live: usize,
    /// Cost of the entries in `groups`.
    bytes: usize,
    next_id: u64,
    /// The epoch of the last forget in each stripe of groups.
    stripes: [u64; STRIPES],
}

struct Entry<V> {
    value: V,
    /// When the query that produced `value` started.
    fetched: Instant,
    /// The CLOCK's reference bit: set by a hit, cleared when the entry is passed over once.
    used: bool,
    id: u64,
    cost: usize,
}

struct Slot<G, K> {
    group: G,
    key: K,
    id: u64,
}

impl<G, K, V> Memory<G, K, V>
where
    G: Hash + Eq + Clone,
    K: Hash + Eq + Clone,
    V: Clone,
{
    /// A memory that keeps nothing when `ttl` or `max_bytes` is zero.
    pub(super) fn new(ttl: Duration, max_bytes: usize) -> Self {
        Memory {
            ttl,
            max_bytes,
            epoch: AtomicU64::new(0),
            hasher: RandomState::new(),
            state: Mutex::new(State {
                groups: HashMap::with_hasher(RandomState::new()),
                clock: VecDeque::new(),
                live: 0,
                bytes: 0,
                next_id: 0,
                stripes: [0; STRIPES],
            }),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.max_bytes > 0
    }

    /// Cost of the entries held now (never above `max_bytes` once a store returns).
    pub(super) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Entries held now.
    pub(super) fn entries(&self) -> usize {
        self.lock().live
    }

    /// Starts a fill: call before the query whose answer may be stored.
    pub(super) fn begin(&self) -> Fill {
        Fill {
            epoch: self.epoch.load(Ordering::SeqCst),
            started: Instant::now(),
        }
    }

    /// The answer under `key` (or a borrowed form of it) in `group`, if it is still trusted at `now`.
    pub(super) fn get<Q>(&self, group: &G, key: &Q, now: Instant) -> Option<V>
    where
        Q: Hash + Equivalent<K> + ?Sized,
    {
        let mut state = self.lock();
        let entry = state.groups.get_mut(group)?.get_mut(key)?;
        if now.saturating_duration_since(entry.fetched) >= self.ttl {
            return None;
        }
        entry.used = true;
        Some(entry.value.clone())
    }

    /// Stores `value` under `key` in `group`, charged `cost`, unless a forget in the group's stripe
    /// happened since `fill` began; then evicts down to the budget.
    pub(super) fn store(&self, group: &G, key: K, value: V, cost: usize, fill: Fill) {
        if !self.enabled() {
            return;
        }
        let stripe = self.stripe(group);
        let mut state = self.lock();
        if state.stripes[stripe] > fill.epoch {
            return;
        }
        let id = state.next_id;
        state.next_id += 1;
        let entry = Entry {
            value,
            fetched: fill.started,
            used: false,
            id,
            cost,
        };
        let replaced = state
            .groups
            .entry(group.clone())
            .or_insert_with(|| HashMap::with_hasher(RandomState::new()))
            .insert(key.clone(), entry);
        state.live += 1;
        state.bytes += cost;
        if let Some(old) = replaced {
            state.live -= 1;
            state.bytes -= old.cost;
        }
        state.clock.push_back(Slot {
            group: group.clone(),
            key,
            id,
        });
        state.evict(self.max_bytes);
    }

    /// Forgets the entries of `group` whose key `which` accepts, and makes the fills of the group that
    /// are in flight drop their answers. Call after every write to the group, whatever its outcome.
    pub(super) fn forget(&self, group: &G, mut which: impl FnMut(&K) -> bool) {
        if !self.enabled() {
            return;
        }
        let stripe = self.stripe(group);
        let mut state = self.lock();
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        state.stripes[stripe] = epoch;
        let Some(entries) = state.groups.get_mut(group) else {
            return;
        };
        let (mut freed, mut count) = (0, 0);
        entries.retain(|key, entry| {
            let gone = which(key);
            if gone {
                freed += entry.cost;
                count += 1;
            }
            !gone
        });
        if entries.is_empty() {
            state.groups.remove(group);
        }
        state.live -= count;
        state.bytes -= freed;
    }

    /// Forgets every entry, and makes every fill in flight drop its answer.
    pub(super) fn forget_all(&self) {
        let mut state = self.lock();
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        state.stripes = [epoch; STRIPES];
        state.groups.clear();
        state.clock.clear();
        state.live = 0;
        state.bytes = 0;
    }

    fn stripe(&self, group: &G) -> usize {
        (self.hasher.hash_one(group) % STRIPES as u64) as usize
    }

    fn lock(&self) -> MutexGuard<'_, State<G, K, V>> {
        // A panic while the lock was held cannot leave the maps inconsistent in a way that matters:
        // at worst an entry is charged wrongly until evicted.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<G: Hash + Eq, K: Hash + Eq, V> State<G, K, V> {
    /// CLOCK eviction down to `max_bytes`: the oldest entry goes unless it was used since it was last
    /// passed over, in which case it gets a second chance at the back of the queue.
    fn evict(&mut self, max_bytes: usize) {
        while self.bytes > max_bytes {
            let Some(slot) = self.clock.pop_front() else {
                break;
            };
            let Some(entries) = self.groups.get_mut(&slot.group) else {
                continue;
            };
            match entries.get_mut(&slot.key) {
                Some(e) if e.id == slot.id => {
                    if e.used {
                        e.used = false;
                        self.clock.push_back(slot);
                    } else {
                        let cost = e.cost;
                        entries.remove(&slot.key);
                        if entries.is_empty() {
                            self.groups.remove(&slot.group);
                        }
                        self.live -= 1;
                        self.bytes -= cost;
                    }
                }
                // Replaced or removed since: the slot is stale.
                _ => {}
            }
        }
        // Slots of replaced or forgotten entries pile up while nothing needs evicting (a hot tag is
        // refetched every TTL): drop them once they outnumber the live entries.
        if self.clock.len() > 2 * self.live + 64 {
            let groups = &self.groups;
            self.clock.retain(|slot| {
                groups
                    .get(&slot.group)
                    .and_then(|entries| entries.get(&slot.key))
                    .is_some_and(|e| e.id == slot.id)
            });
        }
    }
}
