//! The sidecar's limits: request body sizes (shared by the HTTP API and `/mcp`) and the
//! per-bottle rate limit on access requests, a token bucket (one sidecar serves one bottle,
//! so one bucket). A flood is answered 429 with `Retry-After` and writes nothing.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Largest request body accepted (a request is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest `/mcp` body (JSON-RPC around the same arguments).
pub const MAX_MCP_BODY_BYTES: usize = MAX_BODY_BYTES * 4;

/// Default: 10 requests a minute, 5 at once.
pub const DEFAULT_PER_MINUTE: u32 = 10;
pub const DEFAULT_BURST: u32 = 5;

pub struct TokenBucket {
    capacity: f64,
    per_sec: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(per_minute: u32, burst: u32) -> TokenBucket {
        let capacity = f64::from(burst.max(1));
        TokenBucket {
            capacity,
            per_sec: f64::from(per_minute.max(1)) / 60.0,
            state: Mutex::new((capacity, Instant::now())),
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&self) -> Result<(), Duration> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.per_sec;
        st.0 = (st.0 + refill).min(self.capacity);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - st.0) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refused_with_wait() {
        let b = TokenBucket::new(10, 5);
        for _ in 0..5 {
            assert!(b.take().is_ok());
        }
        let wait = b.take().err().unwrap_or_default();
        assert!(
            wait > Duration::from_secs(4) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
    }
}
