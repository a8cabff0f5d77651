//! A tiny HTTPS smart-HTTP origin for tests: TLS (test CA from rcgen), requires one Basic
//! token, records every Authorization header it saw, and runs `git http-backend` as CGI.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

pub struct Origin {
    pub addr: SocketAddr,
    pub ca_pem: PathBuf,
    pub seen_auth: Arc<Mutex<Vec<String>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

impl Origin {
    /// Serves the bare repositories under `root` for `host` (cert SAN) on 127.0.0.1:0.
    pub fn start(root: &Path, host: &str, expected_auth: &str, dir: &Path) -> Origin {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let ca_pem = dir.join("origin-ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let seen_auth = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (seen, reqs) = (seen_auth.clone(), requests.clone());
        let root = root.to_path_buf();
        let expected = expected_auth.to_string();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                let (seen, reqs, root, expected) =
                    (seen.clone(), reqs.clone(), root.clone(), expected.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (seen, reqs, root, expected) =
                            (seen.clone(), reqs.clone(), root.clone(), expected.clone());
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
                                .unwrap_or_default();
                            seen.lock().unwrap().push(auth.clone());
                            reqs.lock()
                                .unwrap()
                                .push(format!("{} {}", req.method(), req.uri()));
                            if auth != expected {
                                return Ok::<_, Infallible>(
                                    Response::builder()
                                        .status(401)
                                        .header("WWW-Authenticate", "Basic realm=\"origin\"")
                                        .body(Full::new(Bytes::from_static(b"unauthorized\n")))
                                        .unwrap(),
                                );
                            }
                            if let Some(rest) = req.uri().path().strip_prefix("/moved.git/") {
                                let q = req
                                    .uri()
                                    .query()
                                    .map(|q| format!("?{q}"))
                                    .unwrap_or_default();
                                return Ok(Response::builder()
                                    .status(302)
                                    .header(
                                        "Location",
                                        format!(
                                            "https://127.0.0.1:{}/demo.git/{rest}{q}",
                                            addr.port()
                                        ),
                                    )
                                    .body(Full::new(Bytes::new()))
                                    .unwrap());
                            }
                            Ok(cgi(req, root).await)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        Origin {
            addr,
            ca_pem,
            seen_auth,
            requests,
            _rt: rt,
        }
    }
}

async fn cgi(req: Request<Incoming>, root: PathBuf) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |n: &str| {
        parts
            .headers
            .get(n)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
    };
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &root)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REMOTE_USER", "gate")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if let Some(ct) = header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(p) = header("git-protocol") {
        cmd.env("HTTP_GIT_PROTOCOL", p);
    }
    if let Some(e) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", e);
    }
    let out = tokio::task::spawn_blocking(move || {
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let b = body.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&b);
        });
        let out = child.wait_with_output().unwrap();
        let _ = w.join();
        out.stdout
    })
    .await
    .unwrap();
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| (p, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|p| (p, 2)));
    let Some((pos, skip)) = split else {
        return Response::builder()
            .status(502)
            .body(Full::new(Bytes::new()))
            .unwrap();
    };
    let head = String::from_utf8_lossy(&out[..pos]).to_string();
    let mut resp = Response::builder().status(200);
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("status") {
                let code: u16 = v.split(' ').next().unwrap_or("500").parse().unwrap_or(500);
                resp = resp.status(code);
            } else {
                resp = resp.header(k.trim(), v);
            }
        }
    }
    resp.body(Full::new(Bytes::copy_from_slice(&out[pos + skip..])))
        .unwrap()
}

/// The `demo` upstream served over HTTPS as `https://origin.test:PORT/demo.git`, requiring the
/// gate's Basic credential for `token`; git-gate is set up to trust and reach it.
/// Returns the origin, the served bare repository and the Authorization value it expects.
pub fn https_origin(env: &mut super::Env, token: &str) -> (Origin, PathBuf, String) {
    let root = env.path("origin-root");
    std::fs::create_dir_all(&root).unwrap();
    let up = env.make_upstream("demo");
    let served = root.join("demo.git");
    std::fs::rename(&up, &served).unwrap();
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    );
    let origin = Origin::start(&root, "origin.test", &expected, env.tmp.path());
    env.extra_env
        .push(("BOTTLE_GIT_TOKEN_0".into(), token.into()));
    env.extra_args.extend([
        "--upstream-ca".to_string(),
        origin.ca_pem.display().to_string(),
        "--resolve".to_string(),
        "origin.test=127.0.0.1".to_string(),
    ]);
    (origin, served, expected)
}
