//! A cap across hosts on a sidecar's pooled upstream connections.
//!
//! hyper-util's pool caps idle connections per host only. An agent allowed a wildcard can
//! open a connection to each of thousands of names, and each would stay pooled for the idle
//! timeout (~50 KiB apiece with TLS). [`ConnCap`] counts every pooled connection. When a new
//! one takes the count over the cap, it closes the idle connections of the hosts used least
//! recently. A host is idle when none of its requests is in flight (from sending the request
//! to the end of the response body) and none of its connections was upgraded. A closed
//! connection's reads end as if the origin had closed it, which hyper's pool expects of any
//! kept-alive connection.
//!
//! Hosts are the pool's keys: scheme and authority of the request target, as hyper-util keys
//! its pool and names the connector's destination.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use http::Uri;
use http_body::{Body, Frame, SizeHint};

/// The pool key of a request target or a connector's destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PoolKey {
    https: bool,
    authority: Option<http::uri::Authority>,
}

impl PoolKey {
    pub fn of(uri: &Uri) -> PoolKey {
        PoolKey {
            https: uri.scheme() == Some(&http::uri::Scheme::HTTPS),
            authority: uri.authority().cloned(),
        }
    }
}

/// What the cap holds of one connection and the connection holds of the cap.
#[derive(Debug, Default)]
pub struct ConnSlot {
    closed: AtomicBool,
    upgraded: AtomicBool,
    reader: AtomicWaker,
}

impl ConnSlot {
    /// True once the cap closed the connection: reads end, writes fail.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Remembers the waker of a read that is waiting, so that closing wakes it.
    pub fn wait_read(&self, cx: &Context<'_>) {
        self.reader.register(cx.waker());
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.reader.wake();
    }
}

/// The connection's registration: unregisters on drop. Put in the connection.
#[derive(Debug)]
pub struct Registration {
    cap: Arc<ConnCap>,
    key: PoolKey,
    id: u64,
    pub(crate) slot: Arc<ConnSlot>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.cap.lock();
        if let Some(host) = inner.hosts.get_mut(&self.key) {
            if host.conns.remove(&self.id).is_some() {
                inner.total -= 1;
            }
        }
        inner.forget_if_unused(&self.key);
    }
}

/// Tells the response (through hyper-util's `Connected::extra`) which connection served it.
#[derive(Debug, Clone)]
pub struct ServedBy(pub Arc<ConnSlot>);

#[derive(Debug, Default)]
struct HostEntry {
    in_flight: usize,
    /// When its last request ended ([`Inner::clock`] ticks): the least recent go first.
    last_used: u64,
    conns: HashMap<u64, Arc<ConnSlot>>,
}

#[derive(Debug, Default)]
struct Inner {
    hosts: HashMap<PoolKey, HostEntry>,
    total: usize,
    next_id: u64,
    clock: u64,
}

impl Inner {
    fn forget_if_unused(&mut self, key: &PoolKey) {
        if self
            .hosts
            .get(key)
            .is_some_and(|h| h.in_flight == 0 && h.conns.is_empty())
        {
            self.hosts.remove(key);
        }
    }

    /// Closes idle connections, least recently used hosts first, until the count is at most
    /// `cap` or no idle connection is left.
    fn evict(&mut self, cap: usize, keep: &PoolKey) {
        if self.total <= cap {
            return;
        }
        let mut idle: Vec<(u64, PoolKey)> = self
            .hosts
            .iter()
            .filter(|(k, h)| h.in_flight == 0 && !h.conns.is_empty() && *k != keep)
            .map(|(k, h)| (h.last_used, k.clone()))
            .collect();
        idle.sort_unstable_by_key(|(t, _)| *t);
        for (_, key) in idle {
            if self.total <= cap {
                break;
            }
            let Some(host) = self.hosts.get_mut(&key) else {
                continue;
            };
            let mut gone = Vec::new();
            for (id, slot) in &host.conns {
                if self.total - gone.len() <= cap {
                    break;
                }
                if !slot.upgraded.load(Ordering::Acquire) {
                    slot.close();
                    gone.push(*id);
                }
            }
            for id in &gone {
                host.conns.remove(id);
            }
            self.total -= gone.len();
            self.forget_if_unused(&key);
        }
    }
}

/// Counts a sidecar's pooled upstream connections and keeps them under a cap (module doc).
#[derive(Debug)]
pub struct ConnCap {
    cap: usize,
    inner: Mutex<Inner>,
}

impl ConnCap {
    pub fn new(cap: usize) -> Arc<ConnCap> {
        Arc::new(ConnCap {
            cap,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // the counts stay consistent even if a holder panicked: every update is one step
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a new connection to `key`, closing idle ones of other hosts when over the cap.
    pub fn register(self: &Arc<Self>, key: PoolKey) -> Registration {
        let slot = Arc::new(ConnSlot::default());
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .hosts
            .entry(key.clone())
            .or_default()
            .conns
            .insert(id, Arc::clone(&slot));
        inner.total += 1;
        inner.evict(self.cap, &key);
        Registration {
            cap: Arc::clone(self),
            key,
            id,
            slot,
        }
    }

    /// Marks a request to `key` in flight until the guard is dropped.
    pub fn begin(self: &Arc<Self>, key: PoolKey) -> InFlight {
        self.lock().hosts.entry(key.clone()).or_default().in_flight += 1;
        InFlight {
            cap: Arc::clone(self),
            key,
        }
    }

    /// How many connections are counted (tests, metrics).
    pub fn count(&self) -> usize {
        self.lock().total
    }
}

/// A request in flight (see [`ConnCap::begin`]).
#[derive(Debug)]
pub struct InFlight {
    cap: Arc<ConnCap>,
    key: PoolKey,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut inner = self.cap.lock();
        inner.clock += 1;
        let now = inner.clock;
        if let Some(host) = inner.hosts.get_mut(&self.key) {
            host.in_flight -= 1;
            host.last_used = now;
        }
        inner.forget_if_unused(&self.key);
    }
}

/// Marks the connection that served `resp` as upgraded: the cap never closes it.
pub fn mark_upgraded<B>(resp: &http::Response<B>) {
    if let Some(ServedBy(slot)) = resp.extensions().get::<ServedBy>() {
        slot.upgraded.store(true, Ordering::Release);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it ends or is dropped.
    pub struct InFlightBody<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> InFlightBody<B> {
    pub fn new(inner: B, guard: InFlight) -> Self {
        InFlightBody {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body> Body for InFlightBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> PoolKey {
        PoolKey::of(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn keys_follow_scheme_and_authority_only() {
        assert_eq!(key("https://a.test/x?y"), key("https://a.test/"));
        assert_ne!(key("https://a.test/"), key("http://a.test/"));
        assert_ne!(key("https://a.test/"), key("https://a.test:8443/"));
        assert_ne!(key("https://a.test/"), key("https://b.test/"));
    }

    #[test]
    fn over_the_cap_the_least_recently_used_idle_host_is_closed() {
        let cap = ConnCap::new(2);
        for h in ["https://a.test", "https://b.test"] {
            drop(cap.begin(key(h)));
        }
        let a = cap.register(key("https://a.test"));
        let b = cap.register(key("https://b.test"));
        // b used again after a: a is now the least recently used
        drop(cap.begin(key("https://b.test")));
        let c = cap.register(key("https://c.test"));
        assert!(a.slot.is_closed());
        assert!(!b.slot.is_closed());
        assert!(!c.slot.is_closed());
        assert_eq!(cap.count(), 2);
        // the closed connection's drop does not count it twice
        drop(a);
        assert_eq!(cap.count(), 2);
        drop((b, c));
        assert_eq!(cap.count(), 0);
        assert!(cap.lock().hosts.is_empty(), "nothing kept of gone hosts");
    }

    #[test]
    fn a_host_with_a_request_in_flight_or_an_upgrade_is_never_closed() {
        let cap = ConnCap::new(1);
        let busy = cap.begin(key("https://a.test"));
        let a = cap.register(key("https://a.test"));
        let b = cap.register(key("https://b.test"));
        b.slot.upgraded.store(true, Ordering::Release);
        let c = cap.register(key("https://c.test"));
        assert!(!a.slot.is_closed(), "in flight");
        assert!(!b.slot.is_closed(), "upgraded");
        assert!(!c.slot.is_closed(), "the new connection itself");
        assert_eq!(cap.count(), 3, "over the cap while nothing is idle");
        drop(busy);
        let d = cap.register(key("https://d.test"));
        // c (never used: the oldest) then a go; b stays upgraded, d is the new one
        assert!(c.slot.is_closed());
        assert!(a.slot.is_closed(), "idle once its request ended");
        assert!(!b.slot.is_closed() && !d.slot.is_closed());
        assert_eq!(cap.count(), 2);
        drop((a, b, c, d));
    }

    #[test]
    fn only_as_many_as_needed_are_closed() {
        let cap = ConnCap::new(3);
        let a1 = cap.register(key("https://a.test"));
        let a2 = cap.register(key("https://a.test"));
        let a3 = cap.register(key("https://a.test"));
        let b = cap.register(key("https://b.test"));
        let closed = [&a1, &a2, &a3]
            .iter()
            .filter(|r| r.slot.is_closed())
            .count();
        assert_eq!(closed, 1);
        assert!(!b.slot.is_closed());
        assert_eq!(cap.count(), 3);
        drop((a1, a2, a3, b));
    }

    #[tokio::test]
    async fn the_body_ends_the_request_in_flight_at_its_end() {
        use http_body_util::{BodyExt, Full};
        let cap = ConnCap::new(0);
        let body = InFlightBody::new(
            Full::new(bytes::Bytes::from_static(b"x")),
            cap.begin(key("https://a.test")),
        );
        assert_eq!(cap.lock().hosts[&key("https://a.test")].in_flight, 1);
        let mut body = std::pin::pin!(body);
        while body.frame().await.is_some() {}
        assert!(cap.lock().hosts.is_empty(), "ended at the last frame");
    }
}
