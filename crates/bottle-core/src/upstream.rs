//! The connection type a sidecar's pooled hyper client uses towards its next hop: a plain
//! or TLS TCP stream, with HTTP/2 chosen when TLS ALPN negotiated `h2`, and (plain only)
//! marked as a connection to an HTTP proxy so hyper sends absolute-form request targets.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A plain or TLS upstream stream (tokio I/O).
pub enum UpstreamIo {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamIo::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(s) => s.is_write_vectored(),
            UpstreamIo::Tls(s) => s.is_write_vectored(),
        }
    }
}

/// The connection handed to hyper (`hyper::rt::Read`/`Write` + hyper-util `Connection`).
pub struct UpstreamConn {
    io: TokioIo<UpstreamIo>,
    h2: bool,
    proxied: bool,
}

impl UpstreamConn {
    /// A plain TCP connection to an origin.
    pub fn plain(tcp: TcpStream) -> Self {
        UpstreamConn {
            io: TokioIo::new(UpstreamIo::Plain(tcp)),
            h2: false,
            proxied: false,
        }
    }

    /// A plain TCP connection to an HTTP proxy: hyper sends absolute-form targets.
    pub fn to_proxy(tcp: TcpStream) -> Self {
        UpstreamConn {
            proxied: true,
            ..Self::plain(tcp)
        }
    }

    /// A TLS connection; HTTP/2 when ALPN negotiated `h2`.
    pub fn tls(tls: TlsStream<TcpStream>) -> Self {
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        UpstreamConn {
            io: TokioIo::new(UpstreamIo::Tls(Box::new(tls))),
            h2,
            proxied: false,
        }
    }

    /// True when ALPN negotiated HTTP/2.
    pub fn is_h2(&self) -> bool {
        self.h2
    }
}

impl Connection for UpstreamConn {
    fn connected(&self) -> Connected {
        let c = Connected::new().proxy(self.proxied);
        if self.h2 {
            c.negotiated_h2()
        } else {
            c
        }
    }
}

impl hyper::rt::Read for UpstreamConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for UpstreamConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn plain_and_proxied_bytes_flow_and_flags() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let echo = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut b = [0u8; 4];
                s.read_exact(&mut b).await.unwrap();
                s.write_all(&b).await.unwrap();
            }
        });
        for proxied in [false, true] {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let conn = if proxied {
                UpstreamConn::to_proxy(tcp)
            } else {
                UpstreamConn::plain(tcp)
            };
            let c = conn.connected();
            assert_eq!(c.is_proxied(), proxied);
            assert!(!c.is_negotiated_h2());
            assert!(!conn.is_h2());
            // through the hyper::rt traits (TokioIo turns them back into tokio I/O)
            let mut io = TokioIo::new(conn);
            io.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            tokio::time::timeout(std::time::Duration::from_secs(20), io.read_exact(&mut b))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&b, b"ping");
        }
        echo.await.unwrap();
    }
}
