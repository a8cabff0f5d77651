//! Many new subdomains of one parent in a short time: data smuggled through
//! DNS names (`<chunk1>.x.evil.example`, `<chunk2>.x.evil.example`, ...).

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use super::host::{registrable_domain, strip_port, subdomain_part};
use super::SUBDOMAIN_BURST;
use crate::{Encoding, Finding};

/// Bounds of a [`SubdomainTracker`].
#[derive(Clone, Copy, Debug)]
pub struct BurstLimits {
    /// How long a first sighting counts as new.
    pub window: Duration,
    /// New subdomains of one parent allowed within `window`; the next is refused.
    pub max_new: usize,
    /// Parents remembered (least recently active evicted first).
    pub max_parents: usize,
    /// Subdomains remembered per parent (oldest first sighting evicted first).
    pub max_remembered: usize,
}

impl Default for BurstLimits {
    fn default() -> Self {
        BurstLimits {
            window: Duration::from_secs(60),
            max_new: 20,
            max_parents: 1024,
            max_remembered: 64,
        }
    }
}

struct Parent {
    /// Hash of the subdomain part -> first sighting. Hashes, not names: the
    /// tracker never holds what an agent may have smuggled.
    seen: HashMap<u64, Instant>,
    last_active: Instant,
}

/// Counts distinct new subdomains per registrable parent (see
/// [`registrable_domain`]) in a sliding window. A subdomain already seen is
/// familiar and always passes; a refused one is not remembered, so retrying
/// it is refused again while the window is full.
///
/// Memory: at most `max_parents * max_remembered` entries of 16 bytes plus
/// the parent names (defaults: 1024 * 64, about 1.5 MiB at worst).
pub struct SubdomainTracker {
    limits: BurstLimits,
    hasher: RandomState,
    parents: HashMap<String, Parent>,
}

impl Default for SubdomainTracker {
    fn default() -> Self {
        Self::new(BurstLimits::default())
    }
}

impl SubdomainTracker {
    pub fn new(limits: BurstLimits) -> SubdomainTracker {
        SubdomainTracker {
            limits,
            hasher: RandomState::new(),
            parents: HashMap::new(),
        }
    }

    pub fn limits(&self) -> BurstLimits {
        self.limits
    }

    /// Parents remembered now.
    pub fn parents(&self) -> usize {
        self.parents.len()
    }

    /// Records a request to `host` (a `:port` is ignored) at `now`; a finding
    /// when it is one new subdomain too many for its parent.
    pub fn observe(&mut self, host: &str, now: Instant) -> Option<Finding> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let sub = subdomain_part(&name);
        if sub.is_empty() {
            return None;
        }
        let parent_name = registrable_domain(&name);
        let key = self.hasher.hash_one(sub);
        let window = self.limits.window;
        if !self.parents.contains_key(parent_name) && self.parents.len() >= self.limits.max_parents
        {
            self.evict_parent();
        }
        let parent = self
            .parents
            .entry(parent_name.to_string())
            .or_insert_with(|| Parent {
                seen: HashMap::new(),
                last_active: now,
            });
        parent.last_active = now;
        if parent.seen.contains_key(&key) {
            return None;
        }
        let recent = parent
            .seen
            .values()
            .filter(|&&t| now.saturating_duration_since(t) < window)
            .count();
        if recent >= self.limits.max_new {
            return Some(Finding {
                detector: SUBDOMAIN_BURST,
                offset: 0,
                len: sub.len(),
                encoding: Encoding::Raw,
            });
        }
        if parent.seen.len() >= self.limits.max_remembered {
            if let Some(oldest) = parent.seen.iter().min_by_key(|(_, &t)| t).map(|(&k, _)| k) {
                parent.seen.remove(&oldest);
            }
        }
        parent.seen.insert(key, now);
        None
    }

    fn evict_parent(&mut self) {
        let oldest = self
            .parents
            .iter()
            .min_by_key(|(_, p)| p.last_active)
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.parents.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_of_new_subdomains_is_cut_at_the_limit() {
        let mut t = SubdomainTracker::default();
        let t0 = Instant::now();
        for i in 0..20 {
            assert!(
                t.observe(&format!("s{i}.exfil.test:443"), t0).is_none(),
                "{i}"
            );
        }
        let f = t.observe("s20.exfil.test", t0).expect("21st new subdomain");
        assert_eq!(f.detector, SUBDOMAIN_BURST);
        // Refused names are not remembered: a retry is refused again.
        assert!(t.observe("s20.exfil.test", t0).is_some());
        // Familiar ones keep working; other parents are independent.
        assert!(t.observe("s3.exfil.test", t0).is_none());
        assert!(t.observe("www.example.com", t0).is_none());
        // After the window, new subdomains are allowed again.
        let later = t0 + Duration::from_secs(61);
        assert!(t.observe("s20.exfil.test", later).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let limits = BurstLimits {
            max_parents: 8,
            max_remembered: 4,
            max_new: 100,
            ..BurstLimits::default()
        };
        let mut t = SubdomainTracker::new(limits);
        let t0 = Instant::now();
        for i in 0..100u64 {
            let at = t0 + Duration::from_millis(i);
            t.observe(&format!("a{i}.p{}.test", i % 20), at);
            assert!(t.parents() <= 8);
            assert!(t.parents.values().all(|p| p.seen.len() <= 4));
        }
    }

    #[test]
    fn apex_and_ips_are_not_counted() {
        let mut t = SubdomainTracker::new(BurstLimits {
            max_new: 0,
            ..BurstLimits::default()
        });
        let now = Instant::now();
        assert!(t.observe("exfil.test", now).is_none());
        assert!(t.observe("127.0.0.1:8080", now).is_none());
        assert!(t.observe("x.exfil.test", now).is_some());
    }
}
