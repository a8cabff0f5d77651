#!/usr/bin/python3
"""The package origin of tests/e2e/tests/clients.rs (issue 16), run in a container of the
bottle-agent-clients image on the test's network, as root (it binds 443).

At start it mints its TLS leaf with openssl from the echo origin's CA (mounted at /ca), so the
bottle's `upstream_ca:` trusts it; generates everything it serves from a fresh nonce (a wheel
and a simple index, an npm tarball and its packument, a cargo sparse registry, a GOPROXY
module, two bare git repositories); writes what it served and the checksums to /out/served.json; then serves HTTPS
on :443, static files and git smart HTTP (`git http-backend` as CGI under /git/).

Every request is logged on stdout as one JSON line: method, host, path, query, status and the
SHA-256 of the Authorization header (never the header itself), so the test can prove which
credential egress injected without anyone writing it down.

Usage: files_origin.py NAME... (the DNS names its certificate covers)
"""

import base64
import hashlib
import http.server
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
import threading
import zipfile

ROOT = "/srv"
WWW = ROOT + "/www"
GIT = ROOT + "/git"
TLS = ROOT + "/tls"
OUT = "/out"
LOG_LOCK = threading.Lock()
# A fixed timestamp keeps archives reproducible within a run (zip needs one anyway).
STAMP = (2026, 1, 1, 0, 0, 0)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def put(rel, data, served):
    path = os.path.join(WWW, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    served["files"][rel] = sha256(data)


def zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members:
            z.writestr(zipfile.ZipInfo(name, STAMP), data)
    return buf.getvalue()


def tgz_bytes(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1767225600
            info.mode = 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gen_pip(nonce, served):
    """A pure-python wheel (zipfile) and a PEP 503 simple index linking it with its hash."""
    init = ('MARK = "%s"\n' % nonce).encode()
    dist = "e2e_hello-1.0.0.dist-info"
    members = [
        ("e2e_hello/__init__.py", init),
        (dist + "/METADATA",
         b"Metadata-Version: 2.1\nName: e2e-hello\nVersion: 1.0.0\n"
         b"Summary: bottle e2e test package\n"),
        (dist + "/WHEEL",
         b"Wheel-Version: 1.0\nGenerator: bottle-e2e\nRoot-Is-Purelib: true\n"
         b"Tag: py3-none-any\n"),
    ]
    record = []
    for name, data in members:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
        record.append("%s,sha256=%s,%d" % (name, digest.decode(), len(data)))
    record.append(dist + "/RECORD,,")
    members.append((dist + "/RECORD", ("\n".join(record) + "\n").encode()))
    whl = zip_bytes(members)
    name = "e2e_hello-1.0.0-py3-none-any.whl"
    put("packages/" + name, whl, served)
    link = '<a href="/packages/%s#sha256=%s">%s</a>' % (name, sha256(whl), name)
    page = "<!DOCTYPE html><html><body>\n%s\n</body></html>\n" % link
    put("simple/e2e-hello/index.html", page.encode(), served)
    put("simple/index.html",
        b'<!DOCTYPE html><html><body><a href="/simple/e2e-hello/">e2e-hello</a></body></html>\n',
        served)
    served["pip"] = {"wheel": "packages/" + name, "init_sha256": sha256(init)}


def gen_npm(nonce, served):
    """An npm tarball (package/...) and its SRI integrity, as npm records it in the lock."""
    index = ('module.exports = { mark: "%s" };\n' % nonce).encode()
    pkg = json.dumps({"name": "e2e-hello", "version": "1.0.0", "main": "index.js",
                      "license": "MIT"}).encode()
    tgz = tgz_bytes([("package/package.json", pkg), ("package/index.js", index)])
    put("npm/e2e-hello-1.0.0.tgz", tgz, served)
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz).digest()).decode()
    # The registry's packument for `npm install e2e-hello --registry https://npm.e2e.test/`.
    packument = {"name": "e2e-hello", "dist-tags": {"latest": "1.0.0"}, "versions": {
        "1.0.0": {"name": "e2e-hello", "version": "1.0.0", "main": "index.js", "dist": {
            "tarball": "https://npm.e2e.test/npm/e2e-hello-1.0.0.tgz",
            "integrity": integrity, "shasum": hashlib.sha1(tgz).hexdigest()}}}}
    put("e2e-hello", json.dumps(packument).encode(), served)
    served["npm"] = {"tarball": "npm/e2e-hello-1.0.0.tgz", "integrity": integrity,
                     "index_sha256": sha256(index)}


def gen_cargo(nonce, served):
    """A sparse registry: config.json, the index file of one crate, and the .crate."""
    lib = ('pub const MARK: &str = "%s";\n' % nonce).encode()
    manifest = b'[package]\nname = "e2ehello"\nversion = "0.1.0"\nedition = "2021"\n'
    crate = tgz_bytes([("e2ehello-0.1.0/Cargo.toml", manifest),
                       ("e2ehello-0.1.0/src/lib.rs", lib)])
    put("dl/e2ehello-0.1.0.crate", crate, served)
    put("index/config.json",
        json.dumps({"dl": "https://crates.e2e.test/dl/{crate}-{version}.crate"}).encode(),
        served)
    line = json.dumps({"name": "e2ehello", "vers": "0.1.0", "deps": [],
                       "cksum": sha256(crate), "features": {}, "yanked": False})
    put("index/e2/eh/e2ehello", (line + "\n").encode(), served)
    served["cargo"] = {"crate": "dl/e2ehello-0.1.0.crate", "lib_sha256": sha256(lib)}


def gen_go(nonce, served):
    """A module on the GOPROXY protocol: @v/list, .info, .mod, .zip and @latest."""
    mod = b"module e2e.test/hello\n\ngo 1.19\n"
    src = ('package hello\n\n// Mark is what the test looks for.\nconst Mark = "%s"\n'
           % nonce).encode()
    prefix = "e2e.test/hello@v1.0.0/"
    z = zip_bytes([(prefix + "go.mod", mod), (prefix + "hello.go", src)])
    base = "e2e.test/hello/@v/"
    info = json.dumps({"Version": "v1.0.0", "Time": "2026-01-01T00:00:00Z"}).encode()
    put(base + "list", b"v1.0.0\n", served)
    put(base + "v1.0.0.info", info, served)
    put(base + "v1.0.0.mod", mod, served)
    put(base + "v1.0.0.zip", z, served)
    put("e2e.test/hello/@latest", info, served)
    served["go"] = {"zip": base + "v1.0.0.zip", "src_sha256": sha256(src)}


def git(*args, cwd=None):
    subprocess.run(["git", "-c", "user.name=origin", "-c", "user.email=origin@example.invalid"]
                   + list(args), cwd=cwd, check=True, capture_output=True)


def gen_git(nonce, served):
    """Bare repositories with one commit on main; receive-pack enabled, so a push that
    reached this origin would land (the test proves egress stops it, not the origin)."""
    served["git"] = {}
    for repo in ("repo", "gated"):
        bare = "%s/%s.git" % (GIT, repo)
        seed = "%s/seed-%s" % (ROOT, repo)
        git("init", "-q", "--bare", "-b", "main", bare)
        git("config", "-f", bare + "/config", "http.receivepack", "true")
        os.makedirs(seed)
        git("init", "-q", "-b", "main", cwd=seed)
        readme = ("%s %s\n" % (repo, nonce)).encode()
        with open(seed + "/README", "wb") as f:
            f.write(readme)
        git("add", "README", cwd=seed)
        git("commit", "-q", "-m", "seed", cwd=seed)
        git("push", "-q", bare, "main", cwd=seed)
        head = subprocess.run(["git", "-C", bare, "rev-parse", "main"], check=True,
                              capture_output=True, text=True).stdout.strip()
        served["git"][repo] = {"head": head, "readme_sha256": sha256(readme)}


def mint_leaf(names):
    """A leaf for every name, signed by the echo origin's CA (which the bottle trusts)."""
    os.makedirs(TLS, exist_ok=True)
    ext = TLS + "/leaf.ext"
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
                "subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", TLS + "/leaf.key",
                    "-subj", "/CN=" + names[0], "-out", TLS + "/leaf.csr"],
                   check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", TLS + "/leaf.csr", "-CA", "/ca/ca.crt",
                    "-CAkey", "/ca/ca.key", "-set_serial", str(secrets.randbits(63)),
                    "-days", "3", "-sha256", "-extfile", ext, "-out", TLS + "/leaf.crt"],
                   check=True, capture_output=True)


def log(entry):
    with LOG_LOCK:
        sys.stdout.write(json.dumps(entry, sort_keys=True) + "\n")
        sys.stdout.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "bottle-e2e-files"

    def log_message(self, fmt, *args):
        pass  # one JSON line per request instead, from handle_any

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def handle_any(self):
        target = self.path
        if "://" in target:  # absolute form: keep the path
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path, _, query = target.partition("?")
        if path.startswith("/git/"):
            status = self.git_backend(path[len("/git"):], query)
        elif self.command in ("GET", "HEAD"):
            status = self.static(path)
        else:
            self.read_body()
            status = self.send(405, b"method not allowed\n", "text/plain")
        auth = self.headers.get("Authorization")
        log({"method": self.command, "host": self.headers.get("Host", ""), "path": path,
             "query": query, "status": status,
             "auth_sha256": sha256(auth.encode()) if auth is not None else None,
             "user_agent": self.headers.get("User-Agent", "")})

    def send(self, status, body, ctype, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        return status

    def static(self, path):
        rel = os.path.normpath(path).lstrip("/")
        if rel.startswith("..") or "\0" in rel:
            return self.send(400, b"bad path\n", "text/plain")
        full = os.path.join(WWW, rel)
        if os.path.isdir(full):
            full = os.path.join(full, "index.html")
        if not os.path.isfile(full):
            return self.send(404, b"not found\n", "text/plain")
        with open(full, "rb") as f:
            body = f.read()
        types = {".html": "text/html", ".json": "application/json", ".zip": "application/zip",
                 ".whl": "application/octet-stream", ".tgz": "application/octet-stream",
                 ".crate": "application/octet-stream", ".info": "application/json"}
        ctype = types.get(os.path.splitext(full)[1], "text/plain; charset=utf-8")
        return self.send(200, body, ctype)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def git_backend(self, path_info, query):
        """git smart HTTP: `git http-backend` as a CGI, its Status header honoured."""
        body = self.read_body()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": GIT,
               "GIT_HTTP_EXPORT_ALL": "1", "GATEWAY_INTERFACE": "CGI/1.1",
               "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_METHOD": self.command,
               "PATH_INFO": path_info, "QUERY_STRING": query,
               "CONTENT_TYPE": self.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": self.client_address[0]}
        for k, v in self.headers.items():
            key = "HTTP_" + k.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH", "HTTP_AUTHORIZATION"):
                env[key] = v
        proc = subprocess.run(["git", "http-backend"], input=body, env=env,
                              capture_output=True)
        out = proc.stdout
        head, rest = b"", out
        for sep in (b"\r\n\r\n", b"\n\n"):
            at = out.find(sep)
            if at >= 0:
                head, rest = out[:at], out[at + len(sep):]
                break
        status, ctype, extra = 200, "application/octet-stream", []
        for line in head.decode("latin-1").splitlines():
            k, _, v = line.partition(":")
            k, v = k.strip().lower(), v.strip()
            if k == "status":
                status = int(v.split()[0])
            elif k == "content-type":
                ctype = v
            elif k and k != "content-length":
                extra.append((line.partition(":")[0].strip(), v))
        if proc.returncode != 0 and not head:
            return self.send(500, proc.stderr or b"git http-backend failed\n", "text/plain")
        return self.send(status, rest, ctype, extra)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, ctx):
        self.ctx = ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, never in the accept loop.
        request.settimeout(60)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except OSError as e:
            log({"tls_error": str(e), "peer": client_address[0]})
            return
        super().finish_request(tls, client_address)


def main():
    import ssl

    names = sys.argv[1:]
    if not names:
        sys.exit("usage: files_origin.py NAME...")
    mint_leaf(names)
    nonce = secrets.token_hex(12)
    served = {"nonce": nonce, "files": {}}
    gen_pip(nonce, served)
    gen_npm(nonce, served)
    gen_cargo(nonce, served)
    gen_go(nonce, served)
    gen_git(nonce, served)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(TLS + "/leaf.crt", TLS + "/leaf.key")
    ctx.set_alpn_protocols(["http/1.1"])
    srv = Server(("0.0.0.0", 443), ctx)
    tmp = OUT + "/served.json.tmp"
    with open(tmp, "w") as f:
        json.dump(served, f, indent=1, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.rename(tmp, OUT + "/served.json")  # appears whole: the test waits for it
    log({"ready": True, "names": names})
    srv.serve_forever()


if __name__ == "__main__":
    main()
