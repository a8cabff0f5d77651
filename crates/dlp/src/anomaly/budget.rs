//! Hash-sized values carry data too: a digest, a UUID or a signature is not
//! judged by its shape (real ones look random), so an agent can write any
//! bytes as "digests" (`/up/<32 bytes as hex>/<32 more>/...`, a new UUID host
//! label per lookup). This tracker gives each registrable parent a budget of
//! *new* hash-sized bytes per time window: a page that loads a few
//! content-addressed assets, or an API called again and again with the same
//! ids, stays far under it; a steady channel runs out and is refused.

use std::time::{Duration, Instant};

use super::host::{registrable_domain, strip_port, subdomain_part};
use super::shape::{digest_sized, DigestSized};
use super::url::digest_values;
use super::window::{PerParent, Sighting};
use super::DIGEST_BUDGET;
use crate::{Encoding, Finding};

/// Bounds of a [`DigestBudget`].
#[derive(Clone, Copy, Debug)]
pub struct BudgetLimits {
    /// How long a new value counts against its parent.
    pub window: Duration,
    /// New hash-sized bytes one parent may receive within `window`.
    pub max_bytes: usize,
    /// Of those, bytes in values not written like content addresses (UUIDs,
    /// bare base64, upper-case or `0x` hex, Base58Check, host labels).
    pub max_id_bytes: usize,
    /// Parents remembered (least recently active evicted first).
    pub max_parents: usize,
    /// Values remembered per parent (oldest first sighting evicted first).
    /// At least `max_bytes / 16` (the smallest value carries 16 bytes), so a
    /// value still inside the window is never forgotten.
    pub max_remembered: usize,
}

impl Default for BudgetLimits {
    fn default() -> Self {
        BudgetLimits {
            window: Duration::from_secs(60),
            // 128 SHA-256 digests, or 136 PyPI wheel paths, a minute.
            max_bytes: 4096,
            // 64 new UUIDs a minute.
            max_id_bytes: 1024,
            max_parents: 256,
            max_remembered: 256,
        }
    }
}

#[derive(Clone, Copy)]
struct Seen {
    at: Instant,
    bytes: usize,
    content_address: bool,
}

impl Sighting for Seen {
    fn at(&self) -> Instant {
        self.at
    }
}

/// Counts the new hash-sized bytes sent to each registrable parent (see
/// [`registrable_domain`]) in a sliding window. A value already seen there
/// is familiar and free; a request whose new values would overrun the budget
/// is refused whole and none of its values is remembered, so a retry is
/// refused again while the window is full.
///
/// Memory: at most `max_parents * max_remembered` entries of about 40 bytes
/// plus the parent names (defaults: 256 * 256, about 2.5 MiB at worst).
pub struct DigestBudget {
    limits: BudgetLimits,
    store: PerParent<Seen>,
}

impl Default for DigestBudget {
    fn default() -> Self {
        Self::new(BudgetLimits::default())
    }
}

impl DigestBudget {
    pub fn new(limits: BudgetLimits) -> DigestBudget {
        DigestBudget {
            limits,
            store: PerParent::new(limits.max_parents),
        }
    }

    pub fn limits(&self) -> BudgetLimits {
        self.limits
    }

    /// Parents remembered now.
    pub fn parents(&self) -> usize {
        self.store.len()
    }

    /// Records the hash-sized values of a request target sent to `host` (a
    /// `:port` is ignored) at `now`; a finding spanning the whole target when
    /// they overrun the parent's budget.
    pub fn observe_url(
        &mut self,
        host: &str,
        path_and_query: &str,
        now: Instant,
    ) -> Option<Finding> {
        let values = digest_values(path_and_query);
        if values.is_empty() {
            return None;
        }
        let refs: Vec<(&[u8], DigestSized)> =
            values.iter().map(|(v, d)| (v.as_slice(), *d)).collect();
        self.charge(host, &refs, now, path_and_query.len())
    }

    /// Records the hash-sized labels (a UUID label passes the shape check)
    /// of `host` beyond its parent; a finding spanning the subdomain part
    /// when they overrun the parent's budget. Host labels are never content
    /// addresses.
    pub fn observe_host(&mut self, host: &str, now: Instant) -> Option<Finding> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let sub = subdomain_part(&name);
        let labels: Vec<(&[u8], DigestSized)> = sub
            .split('.')
            .filter_map(|l| {
                digest_sized(l.as_bytes()).map(|d| {
                    let id = DigestSized {
                        content_address: false,
                        ..d
                    };
                    (l.as_bytes(), id)
                })
            })
            .collect();
        if labels.is_empty() {
            return None;
        }
        self.charge(&name, &labels, now, sub.len())
    }

    fn charge(
        &mut self,
        host: &str,
        values: &[(&[u8], DigestSized)],
        now: Instant,
        finding_len: usize,
    ) -> Option<Finding> {
        let name = strip_port(host).trim_end_matches('.').to_ascii_lowercase();
        let parent_name = registrable_domain(&name);
        let limits = self.limits;
        let keys: Vec<u64> = values.iter().map(|(v, _)| self.store.key(*v)).collect();
        let parent = self.store.parent(parent_name, now);
        let mut fresh: Vec<(u64, Seen)> = Vec::new();
        for (&(_, d), &key) in values.iter().zip(&keys) {
            if parent.knows(key) || fresh.iter().any(|(k, _)| *k == key) {
                continue;
            }
            fresh.push((
                key,
                Seen {
                    at: now,
                    bytes: d.bytes,
                    content_address: d.content_address,
                },
            ));
        }
        if fresh.is_empty() {
            return None;
        }
        let recent = |s: &&Seen| now.saturating_duration_since(s.at) < limits.window;
        let (mut total, mut ids) = (0usize, 0usize);
        for s in parent
            .recent(now, limits.window)
            .chain(fresh.iter().map(|(_, s)| s).filter(recent))
        {
            total += s.bytes;
            if !s.content_address {
                ids += s.bytes;
            }
        }
        if total > limits.max_bytes || ids > limits.max_id_bytes {
            return Some(Finding {
                detector: DIGEST_BUDGET,
                offset: 0,
                len: finding_len,
                encoding: Encoding::Raw,
            });
        }
        for (key, s) in fresh {
            parent.remember(key, s, limits.max_remembered);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_of(seed: u64, bytes: usize) -> String {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..bytes)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:02x}", (x >> 24) as u8)
            })
            .collect()
    }

    fn uuid_of(seed: u64) -> String {
        let h = hex_of(seed, 16);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    #[test]
    fn a_steady_channel_of_hex_digests_runs_out() {
        let mut b = DigestBudget::default();
        let t0 = Instant::now();
        // 4 x 32 bytes a request: 32 requests fit in 4 KiB, the 33rd does not.
        let url = |i: u64| {
            let v: Vec<String> = (0..4).map(|k| hex_of(i * 8 + k, 32)).collect();
            format!("/up/{}", v.join("/"))
        };
        for i in 0..32 {
            assert!(
                b.observe_url("x.exfil.test:443", &url(i), t0).is_none(),
                "{i}"
            );
        }
        let f = b
            .observe_url("exfil.test", &url(32), t0)
            .expect("over budget");
        assert_eq!(
            (f.detector, f.offset, f.len),
            (DIGEST_BUDGET, 0, url(32).len())
        );
        // Refused values are not remembered; familiar ones stay free; other
        // parents have their own budget; the window slides.
        assert!(b.observe_url("exfil.test", &url(32), t0).is_some());
        assert!(b.observe_url("exfil.test", &url(3), t0).is_none());
        assert!(b.observe_url("example.com", &url(32), t0).is_none());
        let later = t0 + Duration::from_secs(61);
        assert!(b.observe_url("exfil.test", &url(32), later).is_none());
    }

    #[test]
    fn ids_have_the_smaller_budget_and_host_labels_count() {
        let mut b = DigestBudget::default();
        let t0 = Instant::now();
        // 64 new UUIDs (1 KiB) pass, over paths and host labels together.
        for i in 0..32 {
            let u = format!("/v1/objects/{}", uuid_of(i));
            assert!(b.observe_url("api.exfil.test", &u, t0).is_none(), "{i}");
            let h = format!("{}.exfil.test", uuid_of(1000 + i));
            assert!(b.observe_host(&h, t0).is_none(), "{i}");
        }
        assert!(b
            .observe_host(&format!("{}.exfil.test", uuid_of(5000)), t0)
            .is_some());
        assert!(b
            .observe_url("exfil.test", &format!("/o/{}", uuid_of(5001)), t0)
            .is_some());
        // The same object fetched again is free; content addresses still fit.
        let again = format!("/v1/objects/{}?expand=metadata", uuid_of(7));
        assert!(b.observe_url("exfil.test", &again, t0).is_none());
        let blob = format!("/v2/x/blobs/sha256:{}", hex_of(9, 32));
        assert!(b.observe_url("exfil.test", &blob, t0).is_none());
        // Names without hash-sized labels cost nothing.
        assert!(b.observe_host("www.exfil.test", t0).is_none());
    }

    #[test]
    fn memory_is_bounded() {
        let limits = BudgetLimits {
            max_parents: 8,
            max_remembered: 4,
            max_bytes: usize::MAX,
            max_id_bytes: usize::MAX,
            ..BudgetLimits::default()
        };
        let mut b = DigestBudget::new(limits);
        let t0 = Instant::now();
        for i in 0..200u64 {
            let at = t0 + Duration::from_millis(i);
            let u = format!("/x/{}", hex_of(i, 32));
            assert!(b
                .observe_url(&format!("p{}.test", i % 20), &u, at)
                .is_none());
            assert!(b.parents() <= 8);
            assert!(b.store.most_remembered() <= 4);
        }
        let d = BudgetLimits::default();
        assert!(d.max_remembered * 16 >= d.max_bytes);
    }
}
