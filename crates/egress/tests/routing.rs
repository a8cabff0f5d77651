//! egress alone, what it lets out: path and method rules, unrouted hosts, git pushes, CONNECT
//! only for passthrough routes, the target from the URI, redirects passed back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_method_rules() {
    bounded(async {
        let fx = Fixture::new().await;
        let (st, _, _) = fx.get("paths.test", "/allowed/a/b", &[]).await;
        assert_eq!(st, StatusCode::OK);
        let (st, _, _) = get(
            fx.eg.addr,
            Method::HEAD,
            &fx.url("paths.test", "/allowed/x"),
            &[],
        )
        .await;
        assert_eq!(st, StatusCode::OK);
        for (m, p, want) in [
            (
                Method::GET,
                "/other",
                "path not allowed: /other on paths.test:",
            ),
            (
                Method::GET,
                "/allowed/../secret",
                "ambiguous path /allowed/../secret on paths.test:",
            ),
            (Method::GET, "/allowed%2f..%2fsecret", "ambiguous path"),
            (
                Method::POST,
                "/allowed/x",
                "method not allowed: POST /allowed/x on paths.test:",
            ),
            (Method::DELETE, "/reflect", "method not allowed"),
        ] {
            let before = fx.origin.requests().len();
            let (st, h, body) = get(fx.eg.addr, m.clone(), &fx.url("paths.test", p), &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{m} {p}: {text}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(
                text.starts_with(&format!("blocked by egress: {want}")),
                "{text}"
            );
            assert_eq!(
                fx.origin.requests().len(),
                before,
                "origin reached for {m} {p}"
            );
        }
        let line = fx
            .eg
            .wait_audit(|v| v["decision"] == "deny" && v["method"] == "POST")
            .await;
        assert!(line["reason"]
            .as_str()
            .unwrap()
            .starts_with("method not allowed"));
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_host_is_refused_by_egress_alone() {
    bounded(async {
        let fx = Fixture::new().await;
        for uri in [
            fx.url("evil.test", "/"),
            fx.http_url("evil.test", "/"),
            fx.url("EVIL.test.", "/x"),
            // the allowlist names open.test on every port, not its subdomains
            fx.url("a.open.test", "/"),
        ] {
            let (st, h, body) = get(fx.eg.addr, Method::GET, &uri, &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{uri}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(text.contains("host not routed"), "{text}");
        }
        // origin-form (not from pipelock) is refused too
        let (st, _, _) = get(fx.eg.addr, Method::GET, "/echo", &[("host", "open.test")]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(fx.origin.requests().is_empty());
        // a routed name resolving to a private address not covered by the allowlist
        let tmp = tempfile::tempdir().unwrap();
        write_config(
            &tmp.path().join("live-config"),
            "routes:\n  - host: \"open.test:*\"\n",
            "",
        );
        let eg = start_egress(tmp.path(), &[], Some(&fx.origin.ca_path), &[]).unwrap();
        let (st, _, body) = get(eg.addr, Method::GET, &fx.url("open.test", "/"), &[]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        assert!(String::from_utf8(body)
            .unwrap()
            .contains("private address: 127.0.0.1"));
        assert!(fx.origin.requests().is_empty());
        drop(eg);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_git_push_is_refused_on_every_route() {
    bounded(async {
        let fx = Fixture::new().await;
        for (m, host, p) in [
            (
                Method::GET,
                "open.test",
                "/acme/demo.git/info/refs?service=git-receive-pack",
            ),
            (Method::POST, "open.test", "/acme/demo.git/git-receive-pack"),
            (
                Method::POST,
                "bearer.test",
                "/acme/demo.git/git-receive-pack",
            ),
            (
                Method::GET,
                "bearer.test",
                "/acme/demo.git/info/refs?SERVICE=git%2Dreceive%2Dpack",
            ),
        ] {
            let (st, h, body) = get(fx.eg.addr, m, &fx.url(host, p), &[]).await;
            let text = String::from_utf8(body).unwrap();
            assert_eq!(st, StatusCode::FORBIDDEN, "{p}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(
                text.contains("git push over HTTPS is refused (push through git-gate)"),
                "{text}"
            );
        }
        // fetches are fine
        let (st, _, _) = fx
            .get(
                "open.test",
                "/acme/demo.git/info/refs?service=git-upload-pack",
                &[],
            )
            .await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_only_for_passthrough_routes() {
    bounded(async {
        let fx = Fixture::new().await;
        let port = fx.origin.https_addr.port();
        // passthrough: a TLS session straight to the origin through the tunnel
        let r = send(
            fx.eg.addr,
            Request::connect(format!("pass.test:{port}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        let up = hyper::upgrade::on(r).await.unwrap();
        let tls =
            tokio_rustls::TlsConnector::from(fx.origin.ca.client_config(&[b"http/1.1"]).unwrap());
        let name = rustls::pki_types::ServerName::try_from("pass.test").unwrap();
        let s = tls
            .connect(name, hyper_util::rt::TokioIo::new(up))
            .await
            .unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = sender
            .send_request(
                Request::get("/echo")
                    .header("host", "pass.test")
                    .header("authorization", "Bearer agent")
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("Bearer agent"));
        drop(sender);
        // CONNECT to anything else is refused before a tunnel is opened
        for target in [
            format!("bearer.test:{port}"),
            format!("open.test:{port}"),
            format!("evil.test:{port}"),
        ] {
            let r = send(
                fx.eg.addr,
                Request::connect(target.as_str())
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await;
            let (st, h, body) = collect(r).await;
            assert_eq!(st, StatusCode::FORBIDDEN, "{target}");
            assert_eq!(h["x-bottle-blocked"], "egress");
            assert!(String::from_utf8(body)
                .unwrap()
                .contains("only for tls_passthrough routes"));
        }
        fx.eg
            .wait_audit(|v| v["event"] == "tunnel" && v["host"] == "pass.test")
            .await;
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_passed_back_not_followed() {
    bounded(async {
        let fx = Fixture::new().await;
        let target = fx.url("bearer.test", "/echo");
        let (st, h, _) = fx
            .get(
                "bearer.test",
                &format!("/redirect?to={target}&status=307"),
                &[],
            )
            .await;
        assert_eq!(st.as_u16(), 307);
        assert_eq!(h["location"], target.as_str());
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_comes_from_the_uri_not_the_host_header() {
    bounded(async {
        let fx = Fixture::new().await;
        // a spoofed Host never changes where the request goes or what is injected
        let (st, _, _) = fx
            .get("bearer.test", "/echo", &[("host", "evil.test")])
            .await;
        assert_eq!(st, StatusCode::OK);
        let reqs = fx.origin.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].sni.as_deref(), Some("bearer.test"));
        assert!(reqs[0]
            .authority
            .as_deref()
            .unwrap()
            .starts_with("bearer.test"));
        assert!(reqs[0]
            .header_all("host")
            .iter()
            .all(|h| !h.contains("evil")));
        let (st, _, _) = fx.get("evil.test", "/echo", &[("host", "open.test")]).await;
        assert_eq!(st, StatusCode::FORBIDDEN);
        // userinfo in the authority is refused
        let uri = format!(
            "https://user:pw@open.test:{}/echo",
            fx.origin.https_addr.port()
        );
        let (st, _, _) = get(fx.eg.addr, Method::GET, &uri, &[]).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(fx.origin.requests().len(), 1);
        fx.finish();
    })
    .await
}
