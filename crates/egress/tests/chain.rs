//! The whole chain: real curl -> pipelock (TLS interception) -> egress -> echo
//! origin over TLS. Needs `target/debug/pipelock`: run `cargo build -p pipelock`
//! first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

struct Curl {
    code: u16,
    headers: String,
    body: Vec<u8>,
}

async fn curl(proxy: std::net::SocketAddr, cacert: &Path, url: &str, extra: &[&str]) -> Curl {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "-D", "/dev/stderr", "-o", "-"])
        .arg("-x")
        .arg(format!("http://{proxy}"))
        .arg("--cacert")
        .arg(cacert)
        .args(extra)
        .arg(url)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let headers = String::from_utf8_lossy(&out.stderr).to_string();
    // the last status line (after a possible "200 Connection established")
    let code = headers
        .lines()
        .rfind(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Curl {
        code,
        headers,
        body: out.stdout,
    }
}

struct Chain {
    fx: Fixture,
    pl: Pipelock,
}

impl Chain {
    async fn new() -> Chain {
        let fx = Fixture::new().await;
        let pl = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        Chain { fx, pl }
    }

    async fn get(&self, host: &str, path: &str, extra: &[&str]) -> Curl {
        curl(self.pl.addr, &self.pl.ca, &self.fx.url(host, path), extra).await
    }

    fn finish(mut self) {
        if let Some(mut c) = self.pl.child.take() {
            signal(c.id(), "TERM");
            wait_timeout(&mut c, Duration::from_secs(20));
        }
        self.fx.finish();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_injects_each_scheme_and_scrubs_the_echo() {
    bounded(async {
        let ch = Chain::new().await;
        let s = ch.fx.secrets.clone();
        let agent = [
            "-H",
            "Authorization: Bearer agent-own",
            "-H",
            "X-Api-Key: agent-own",
        ];
        for (host, q) in [
            ("bearer.test", ""),
            ("basic.test", ""),
            ("header.test", "from_header=X-Api-Key&"),
            ("query.test", "from_query=api_key&api_key=agent-own&"),
        ] {
            for v in [
                "",
                "split=1",
                "gzip=1",
                "encoding=br",
                "split=1&encoding=deflate",
            ] {
                let path = format!("/reflect?{q}{v}");
                let r = ch.get(host, &path, &agent).await;
                let what = format!("{host}{path}");
                assert_eq!(r.code, 200, "{what}: {}", r.headers);
                let text = String::from_utf8_lossy(&r.body);
                assert!(text.matches(REDACTED).count() >= 6, "{what}: {text}");
                assert_clean(&what, &r.body, &s.all());
                assert_clean(&what, r.headers.as_bytes(), &s.all());
            }
        }
        let reqs = ch.fx.origin.requests();
        let last = |h: &str| {
            reqs.iter()
                .rev()
                .find(|r| r.sni.as_deref() == Some(h))
                .unwrap()
                .clone()
        };
        assert_eq!(
            last("bearer.test").header_all("authorization"),
            vec![format!("Bearer {}", s.bearer)]
        );
        assert_eq!(
            last("header.test").header_all("x-api-key"),
            vec![format!("key {}", s.header)]
        );
        assert!(last("header.test").header("authorization").is_none());
        let q = last("query.test").query.unwrap();
        assert_eq!(q.matches("api_key=").count(), 1, "{q}");
        ch.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_rules_git_push_and_passthrough() {
    bounded(async {
        let ch = Chain::new().await;
        // path and method rules are egress's
        let r = ch.get("paths.test", "/other", &[]).await;
        assert_eq!(r.code, 403);
        assert!(String::from_utf8_lossy(&r.body).contains("path not allowed"));
        let r = ch.get("paths.test", "/allowed/x", &["-X", "POST"]).await;
        assert_eq!(r.code, 403);
        assert!(String::from_utf8_lossy(&r.body).contains("method not allowed"));
        let r = ch.get("paths.test", "/allowed/x", &[]).await;
        assert_eq!(r.code, 200);
        // HTTPS git push
        let r = ch
            .get(
                "open.test",
                "/acme/demo.git/info/refs?service=git-receive-pack",
                &[],
            )
            .await;
        assert_eq!(r.code, 403);
        assert!(String::from_utf8_lossy(&r.body).contains("git push over HTTPS is refused"));
        // passthrough: curl talks TLS to the origin itself (origin CA, not pipelock's)
        let url = ch.fx.url("pass.test", "/echo");
        let r = curl(ch.pl.addr, &ch.fx.origin.ca_path, &url, &[]).await;
        assert_eq!(r.code, 200, "{}", r.headers);
        let reqs = ch.fx.origin.requests();
        assert!(reqs.iter().any(|r| r.sni.as_deref() == Some("pass.test")));
        ch.fx
            .eg
            .wait_audit(|v| v["event"] == "tunnel" && v["host"] == "pass.test")
            .await;
        ch.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_host_refused_by_egress_even_if_pipelock_allows_it() {
    bounded(async {
        let fx = Fixture::new().await;
        // pipelock's own config (wider than egress's): evil.test allowed
        let pl_cfg = fx.tmp.path().join("pipelock-config");
        write_config(
            &pl_cfg,
            &routes_yaml(),
            &format!("{ALLOWLIST}evil.test:*\n"),
        );
        let pl = start_pipelock(fx.tmp.path(), &pl_cfg, fx.eg.addr).await;
        let r = curl(pl.addr, &pl.ca, &fx.url("evil.test", "/echo"), &[]).await;
        assert_eq!(r.code, 403, "{}", r.headers);
        let body = String::from_utf8_lossy(&r.body);
        assert!(
            body.contains("blocked by egress: host not routed: evil.test"),
            "{body}"
        );
        assert!(fx.origin.requests().is_empty());
        let ch = Chain { fx, pl };
        ch.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_websocket_on_an_injecting_route_is_scrubbed() {
    use bytes::Bytes;
    use futures_util::{SinkExt, StreamExt};
    use http::{Request, StatusCode};
    use http_body_util::Full;
    use hyper_util::rt::TokioIo;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    bounded(async {
        let ch = Chain::new().await;
        let port = ch.fx.origin.https_addr.port();
        // CONNECT through pipelock, TLS with pipelock's CA (intercepted)
        let mut tcp = tokio::net::TcpStream::connect(ch.pl.addr).await.unwrap();
        tcp.write_all(
            format!("CONNECT bearer.test:{port} HTTP/1.1\r\nHost: bearer.test:{port}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            assert_eq!(tcp.read(&mut b).await.unwrap(), 1);
            head.push(b[0]);
        }
        assert!(
            String::from_utf8_lossy(&head).contains(" 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let pem = std::fs::read(&ch.pl.ca).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile_certs(&pem) {
            roots.add(c).unwrap();
        }
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(
                rustls::pki_types::ServerName::try_from("bearer.test").unwrap(),
                tcp,
            )
            .await
            .unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(conn.with_upgrades());
        let r = sender
            .send_request(
                Request::get("/ws")
                    .header("host", format!("bearer.test:{port}"))
                    .header("connection", "Upgrade")
                    .header("upgrade", "websocket")
                    .header("sec-websocket-version", "13")
                    .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        let up = hyper::upgrade::on(r).await.unwrap();
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(up),
            Role::Client,
            None,
        )
        .await;
        let secret = ch.fx.secrets.bearer.clone();
        ws.send(Message::text(format!("a {secret} b")))
            .await
            .unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.into_text().unwrap().as_str(), format!("a {REDACTED} b"));
        let _ = ws.close(None).await;
        drop(ws);
        let reqs = ch.fx.origin.requests();
        let hs = reqs.iter().find(|r| r.path == "/ws").unwrap();
        assert_eq!(
            hs.header_all("authorization"),
            vec![format!("Bearer {secret}")]
        );
        ch.finish();
    })
    .await
}

fn rustls_pemfile_certs(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_refuses_cleartext_credentials_and_rule_dodges() {
    bounded(async {
        let ch = Chain::new().await;
        // `curl -x pipelock http://...` on an injecting route: egress refuses before
        // anything is sent, so no token ever crosses the wire in clear
        let url = ch.fx.http_url("bearer.test", "/echo");
        let r = curl(ch.pl.addr, &ch.pl.ca, &url, &[]).await;
        assert_eq!(r.code, 403, "{}", r.headers);
        assert!(
            r.headers
                .to_ascii_lowercase()
                .contains("x-bottle-blocked: egress"),
            "{}",
            r.headers
        );
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            text.contains("refusing to send it over cleartext"),
            "{text}"
        );
        assert_clean("cleartext refusal", &r.body, &ch.fx.secrets.all());
        // a path that Tomcat/Spring would read as /secret, and a method override
        for (path, extra, want) in [
            ("/allowed/..;/secret", &[][..], "ambiguous path"),
            ("/allowed/%2e%2e/secret", &[][..], "ambiguous path"),
            (
                "/allowed/x",
                &["-H", "X-HTTP-Method-Override: DELETE"][..],
                "method override not allowed",
            ),
        ] {
            let mut args = vec!["--path-as-is"];
            args.extend_from_slice(extra);
            let r = ch.get("paths.test", path, &args).await;
            assert_eq!(r.code, 403, "{path}: {}", r.headers);
            let text = String::from_utf8_lossy(&r.body);
            assert!(text.contains(want), "{path}: {text}");
        }
        let reqs = ch.fx.origin.requests();
        assert!(reqs.is_empty(), "the origin was reached: {reqs:?}");
        ch.finish();
    })
    .await
}

/// The pipelock -> egress key: egress (`--client-key-env`) serves only requests carrying it,
/// pipelock (`--upstream-proxy-key-env`) adds it to every request and CONNECT after dropping
/// whatever the agent sent; the origin never sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_with_the_pipelock_key() {
    bounded(async {
        let (fx, key) = Fixture::with_client_key("EGRESS_KEY").await;
        // without the key pipelock's requests are refused by egress
        let bare = start_pipelock(fx.tmp.path(), &fx.eg.cfg_dir, fx.eg.addr).await;
        let r = curl(bare.addr, &bare.ca, &fx.url("bearer.test", "/echo"), &[]).await;
        assert_eq!(r.code, 407, "{}", r.headers);
        assert!(fx.origin.requests().is_empty());
        drop(bare);

        let pl = fx.keyed_pipelock(&key).await;
        let forged = format!("Proxy-Authorization: Bottle {key}-forged");
        let agent = ["-H", forged.as_str(), "--proxy-user", "agent:pw"];
        let r = curl(pl.addr, &pl.ca, &fx.url("bearer.test", "/echo"), &agent).await;
        assert_eq!(r.code, 200, "{}", r.headers);
        // passthrough goes as CONNECT to egress, with the key (the agent's Proxy-Authorization
        // to pipelock is not passed on)
        let agent = ["--proxy-user", "agent:pw"];
        let r = curl(
            pl.addr,
            &fx.origin.ca_path,
            &fx.url("pass.test", "/echo"),
            &agent,
        )
        .await;
        assert_eq!(r.code, 200, "{}", r.headers);
        let reqs = fx.origin.requests();
        let b = reqs
            .iter()
            .find(|r| r.sni.as_deref() == Some("bearer.test"))
            .expect("bearer.test not reached");
        assert_eq!(
            b.header_all("authorization"),
            vec![format!("Bearer {}", fx.secrets.bearer)]
        );
        for r in &reqs {
            assert!(r.header("proxy-authorization").is_none(), "{r:?}");
        }
        let mut all = fx.secrets.all();
        all.push(key.clone());
        assert_no_secret_in_files(fx.tmp.path(), &all);
        let ch = Chain { fx, pl };
        ch.finish();
    })
    .await
}
