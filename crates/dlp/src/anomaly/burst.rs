//! Many new subdomains of one parent in a short time: data smuggled through
//! DNS names (`<chunk1>.x.evil.example`, `<chunk2>.x.evil.example`, ...).

use std::time::{Duration, Instant};

use super::host::{registrable_domain, strip_port, subdomain_part};
use super::shape::{reads_as_words, word_score, WORD_SCORE_CUT};
use super::window::{PerParent, Sighting};
use super::SUBDOMAIN_BURST;
use crate::{Encoding, Finding};

/// Bounds of a [`SubdomainTracker`].
#[derive(Clone, Copy, Debug)]
pub struct BurstLimits {
    /// How long a first sighting counts as new.
    pub window: Duration,
    /// New subdomains of one parent allowed within `window`; the next is refused.
    pub max_new: usize,
    /// Of those, new subdomains that read as data (8+ characters of labels
    /// that are not words), allowed within `window`.
    pub max_new_data: usize,
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
            max_new_data: 4,
            max_parents: 1024,
            max_remembered: 64,
        }
    }
}

/// First sighting of a subdomain part (hashed, never the name) and whether
/// it reads as data.
#[derive(Clone, Copy)]
struct Sub {
    at: Instant,
    data: bool,
}

impl Sighting for Sub {
    fn at(&self) -> Instant {
        self.at
    }
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
    store: PerParent<Sub>,
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
            store: PerParent::new(limits.max_parents),
        }
    }

    pub fn limits(&self) -> BurstLimits {
        self.limits
    }

    /// Parents remembered now.
    pub fn parents(&self) -> usize {
        self.store.len()
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
        let key = self.store.key(sub);
        let limits = self.limits;
        let parent = self.store.parent(parent_name, now);
        if parent.knows(key) {
            return None;
        }
        let data = reads_as_data(sub);
        let (mut recent, mut recent_data) = (0, 0);
        for s in parent.recent(now, limits.window) {
            recent += 1;
            recent_data += usize::from(s.data);
        }
        if recent >= limits.max_new || data && recent_data >= limits.max_new_data {
            return Some(Finding {
                detector: SUBDOMAIN_BURST,
                offset: 0,
                len: sub.len(),
                encoding: Encoding::Raw,
            });
        }
        parent.remember(key, Sub { at: now, data }, limits.max_remembered);
        None
    }
}

/// Whether a subdomain part carries data-like text: at least 8 characters of
/// labels that do not read as words (`k3j5h7g9f2d4.q`, not `a.tile`).
fn reads_as_data(sub: &str) -> bool {
    let joined: Vec<u8> = sub
        .split('.')
        .filter(|l| !reads_as_words(l))
        .flat_map(|l| l.bytes())
        .filter(|&b| b != b'-')
        .collect();
    joined.len() >= 8 && word_score(&joined) < WORD_SCORE_CUT
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
    fn data_like_subdomains_have_a_smaller_budget() {
        let mut t = SubdomainTracker::default();
        let t0 = Instant::now();
        let labels = [
            "k3j5h7g9f2d4",
            "q1w3e5r7t9y2",
            "z8x6c4v2b0n1",
            "m5n7b9v1c3x5",
            "p0o9i8u7y6t5",
            "l2k4j6h8g0f1",
            "a9s7d5f3g1h2",
            "r4t6y8u0i2o4",
            "c7v9b1n3m5q6",
        ];
        for (i, l) in labels.iter().enumerate() {
            let got = t.observe(&format!("{l}.q.exfil.test"), t0);
            assert_eq!(got.is_some(), i >= 4, "{l}");
        }
        // Word-like and short names still have the full budget.
        for l in [
            "www", "api", "docs", "cdn", "status", "blog", "assets", "media",
        ] {
            assert!(t.observe(&format!("{l}.exfil.test"), t0).is_none(), "{l}");
        }
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
            assert!(t.store.most_remembered() <= 4);
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
