//! The bounded store the windowed trackers share ([`super::SubdomainTracker`],
//! [`super::DigestBudget`]): per registrable parent, the first sighting of
//! each value, keyed by a hash (the store never holds what an agent may have
//! smuggled). Parents past `max_parents` evict the least recently active one;
//! values past `max_remembered` evict the oldest first sighting.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::time::Instant;

/// A first sighting: when it was seen, plus what the tracker counts.
pub(super) trait Sighting: Copy {
    fn at(&self) -> Instant;
}

pub(super) struct Parent<S> {
    /// Hash of the value -> its first sighting.
    seen: HashMap<u64, S>,
    last_active: Instant,
}

impl<S: Sighting> Parent<S> {
    pub(super) fn knows(&self, key: u64) -> bool {
        self.seen.contains_key(&key)
    }

    /// Sightings younger than `window` at `now`.
    pub(super) fn recent(
        &self,
        now: Instant,
        window: std::time::Duration,
    ) -> impl Iterator<Item = &S> + '_ {
        self.seen
            .values()
            .filter(move |s| now.saturating_duration_since(s.at()) < window)
    }

    /// Remember `key`, first forgetting the oldest sighting when
    /// `max_remembered` are held.
    pub(super) fn remember(&mut self, key: u64, s: S, max_remembered: usize) {
        if self.seen.len() >= max_remembered {
            if let Some(oldest) = self
                .seen
                .iter()
                .min_by_key(|(_, s)| s.at())
                .map(|(&k, _)| k)
            {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key, s);
    }
}

/// First sightings per parent, bounded in parents and values per parent.
pub(super) struct PerParent<S> {
    hasher: RandomState,
    parents: HashMap<String, Parent<S>>,
    max_parents: usize,
}

impl<S: Sighting> PerParent<S> {
    pub(super) fn new(max_parents: usize) -> Self {
        PerParent {
            hasher: RandomState::new(),
            parents: HashMap::new(),
            max_parents,
        }
    }

    /// Parents remembered now.
    pub(super) fn len(&self) -> usize {
        self.parents.len()
    }

    /// Most values remembered by any one parent (tests check the bound).
    #[cfg(test)]
    pub(super) fn most_remembered(&self) -> usize {
        self.parents
            .values()
            .map(|p| p.seen.len())
            .max()
            .unwrap_or(0)
    }

    /// The key a value is remembered by (a keyed hash, random per store).
    pub(super) fn key<T: Hash + ?Sized>(&self, value: &T) -> u64 {
        self.hasher.hash_one(value)
    }

    /// The parent's sightings, marked active at `now`; a new parent first
    /// evicts the least recently active one when `max_parents` are held.
    pub(super) fn parent(&mut self, name: &str, now: Instant) -> &mut Parent<S> {
        if !self.parents.contains_key(name) && self.parents.len() >= self.max_parents {
            let oldest = self
                .parents
                .iter()
                .min_by_key(|(_, p)| p.last_active)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.parents.remove(&k);
            }
        }
        let parent = self
            .parents
            .entry(name.to_string())
            .or_insert_with(|| Parent {
                seen: HashMap::new(),
                last_active: now,
            });
        parent.last_active = now;
        parent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[derive(Clone, Copy)]
    struct At(Instant);
    impl Sighting for At {
        fn at(&self) -> Instant {
            self.0
        }
    }

    #[test]
    fn bounded_in_parents_and_values_oldest_evicted_first() {
        let t0 = Instant::now();
        let s = |k: u64| t0 + Duration::from_secs(k);
        let mut store: PerParent<At> = PerParent::new(2);
        let ka = store.key("a");
        store.parent("one", s(0)).remember(ka, At(s(0)), 2);
        store.parent("two", s(1));
        // "one" is the least recently active: a third parent evicts it.
        store.parent("three", s(2));
        assert_eq!(store.len(), 2);
        assert!(!store.parent("one", s(3)).knows(ka));
        // Values: the oldest sighting goes first.
        let p = store.parent("one", s(3));
        p.remember(1, At(s(3)), 2);
        p.remember(2, At(s(4)), 2);
        p.remember(3, At(s(5)), 2);
        assert!(!p.knows(1) && p.knows(2) && p.knows(3));
        assert_eq!(p.recent(s(5), Duration::from_secs(1)).count(), 1);
        assert_eq!(p.recent(s(5), Duration::from_secs(60)).count(), 2);
    }
}
