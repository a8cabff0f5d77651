//! An I/O wrapper that fails with `TimedOut` once neither direction made progress for a while.
//! Bounds idle keep-alive connections, idle tunnels and slowloris bodies; every sidecar's
//! listener wraps its connections in it (see `serve`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pin_project! {
    /// `inner`, closed with `TimedOut` after `timeout` without a byte read or written.
    pub struct IdleIo<T> {
        #[pin]
        inner: T,
        sleep: Pin<Box<Sleep>>,
        timeout: Duration,
    }
}

impl<T> IdleIo<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        IdleIo {
            inner,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// Re-arms the timer after progress; a pending operation fails once the timer has fired.
fn settle<R>(
    sleep: &mut Pin<Box<Sleep>>,
    timeout: Duration,
    cx: &mut Context<'_>,
    poll: Poll<io::Result<R>>,
    progressed: impl FnOnce(&io::Result<R>) -> bool,
) -> Poll<io::Result<R>> {
    match poll {
        Poll::Ready(r) => {
            if progressed(&r) {
                sleep.as_mut().reset(Instant::now() + timeout);
            }
            Poll::Ready(r)
        }
        Poll::Pending => match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "idle timeout")))
            }
            Poll::Pending => Poll::Pending,
        },
    }
}

fn wrote(r: &io::Result<usize>) -> bool {
    matches!(r, Ok(n) if *n > 0)
}

impl<T: AsyncRead> AsyncRead for IdleIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let poll = this.inner.poll_read(cx, buf);
        let after = buf.filled().len();
        settle(this.sleep, *this.timeout, cx, poll, |_| after > before)
    }
}

impl<T: AsyncWrite> AsyncWrite for IdleIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write(cx, data);
        settle(this.sleep, *this.timeout, cx, poll, wrote)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        settle(this.sleep, *this.timeout, cx, poll, wrote)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn silence_times_out_and_traffic_re_arms() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut io = IdleIo::new(a, Duration::from_millis(800));
        // traffic every 500 ms keeps it alive well past the 800 ms mark
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            b.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            io.read_exact(&mut one).await.unwrap();
        }
        let mut one = [0u8; 1];
        let err = io.read_exact(&mut one).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
