//! Bounded leaf-certificate cache with one mint per host, even under concurrent first connections.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use rustls::sign::CertifiedKey;
use tokio::sync::OnceCell;

use super::ca::Ca;
use crate::error::PipelockError;

type Slot = Arc<OnceCell<Arc<CertifiedKey>>>;

/// Counters the cache keeps (exported as metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub mints: u64,
    pub size: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Slot>,
    order: VecDeque<String>, // insertion order, for FIFO eviction
    hits: u64,
    misses: u64,
    mints: u64,
}

/// The cache. The CA comes from the command line and never changes at reload, so the cache
/// lives for the whole process (kept across reloads).
pub struct CertCache {
    ca: Arc<Ca>,
    capacity: usize,
    inner: Mutex<Inner>,
}

impl CertCache {
    pub fn new(ca: Arc<Ca>, capacity: usize) -> CertCache {
        CertCache {
            ca,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn ca(&self) -> &Arc<Ca> {
        &self.ca
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked while holding it; the map is
        // still consistent (every mutation is a single insert/remove).
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Returns the leaf for `host` (normalised host text), minting it once if needed.
    pub async fn get(&self, host: &str) -> Result<Arc<CertifiedKey>, PipelockError> {
        let slot = {
            let mut inner = self.lock();
            if let Some(slot) = inner.map.get(host).cloned() {
                if slot.initialized() {
                    inner.hits += 1;
                } else {
                    inner.misses += 1; // waiting on someone else's mint
                }
                slot
            } else {
                inner.misses += 1;
                while inner.map.len() >= self.capacity {
                    match inner.order.pop_front() {
                        Some(old) => {
                            inner.map.remove(&old);
                        }
                        None => break,
                    }
                }
                let slot: Slot = Arc::new(OnceCell::new());
                inner.map.insert(host.to_string(), slot.clone());
                inner.order.push_back(host.to_string());
                slot
            }
        };
        let ca = self.ca.clone();
        let host_owned = host.to_string();
        let cert = slot
            .get_or_try_init(|| async move {
                let r = tokio::task::spawn_blocking(move || ca.mint(&host_owned))
                    .await
                    .map_err(|e| PipelockError::Ca(format!("mint task: {e}")))?;
                if r.is_ok() {
                    self.lock().mints += 1;
                }
                r
            })
            .await?;
        Ok(cert.clone())
    }

    /// A cached leaf without minting (for the synchronous rustls resolver).
    pub fn peek(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.lock().map.get(host).and_then(|s| s.get().cloned())
    }

    pub fn stats(&self) -> CacheStats {
        let i = self.lock();
        CacheStats {
            hits: i.hits,
            misses: i.misses,
            mints: i.mints,
            size: i.map.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(cap: usize) -> Arc<CertCache> {
        let dir = tempfile::tempdir().unwrap();
        super::super::ca::init_ca(dir.path()).unwrap();
        let ca = Ca::load(&dir.path().join("ca.crt"), &dir.path().join("ca.key")).unwrap();
        Arc::new(CertCache::new(Arc::new(ca), cap))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_mint_per_host_under_concurrency() {
        let c = cache(100);
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let c = c.clone();
            tasks.push(tokio::spawn(
                async move { c.get("a.example").await.unwrap() },
            ));
        }
        let mut certs = Vec::new();
        for t in tasks {
            certs.push(t.await.unwrap());
        }
        assert_eq!(c.stats().mints, 1);
        assert!(certs.iter().all(|k| Arc::ptr_eq(k, &certs[0])));
        c.get("a.example").await.unwrap();
        assert!(c.stats().hits >= 1);
    }

    #[tokio::test]
    async fn bounded() {
        let c = cache(3);
        for i in 0..10 {
            c.get(&format!("h{i}.example")).await.unwrap();
        }
        assert_eq!(c.stats().size, 3);
        assert!(c.peek("h9.example").is_some());
        assert!(c.peek("h0.example").is_none());
    }
}
