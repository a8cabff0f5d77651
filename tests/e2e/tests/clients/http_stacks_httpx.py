# python httpx through the bottle: HTTP/2 on (the agent<->pipelock leg), then SSE read the way
# an LLM SDK reads a token stream (httpx stream + iter_lines), over HTTP/1.1 and HTTP/2.
# HTTPS_PROXY and SSL_CERT_FILE come from the runtime contract (trust_env).
# argv: host, refused host, download size, events, interval ms. Prints key=value lines.
import hashlib, os, sys, time
import httpx

host, refused, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
n, interval = int(sys.argv[4]), int(sys.argv[5])
print("version=" + httpx.__version__)
with httpx.Client(http2=True, timeout=60) as c:
    r = c.get(f"https://{host}/download?bytes={size}&c=httpx")
    print("get_http_version=" + r.http_version)
    print(f"get_status={r.status_code}")
    print("get_sha=" + hashlib.sha256(r.content).hexdigest())
    body = os.urandom(2 * 1024 * 1024 + 3)
    r = c.post(f"https://{host}/upload?c=httpx", content=body)
    print("post_http_version=" + r.http_version)
    print(f"post_status={r.status_code}")
    print("post_sent_sha=" + hashlib.sha256(body).hexdigest())
    if r.status_code == 200:
        print("post_origin_sha=" + r.json()["sha256"])
    try:
        r = c.get(f"https://{refused}/download?bytes=16&c=httpx")
        print(f"refused=reached status {r.status_code}")
    except httpx.HTTPError as e:
        print("refused=" + type(e).__name__ + ": " + str(e).replace("\n", " ")[:400])


def sse(label, http2):
    """n events interval ms apart: when each arrived, and when the stream ended."""
    with httpx.Client(http2=http2, timeout=60) as c:
        t0 = time.monotonic()
        names, times = [], []
        url = f"https://{host}/sse?n={n}&interval_ms={interval}&c=httpx-{label}"
        with c.stream("GET", url) as r:
            print(f"{label}_http_version={r.http_version}")
            print(f"{label}_content_type={r.headers.get('content-type', '')}")
            # httpx 0.23's iter_lines keeps the line ending: strip it.
            for line in map(str.rstrip, r.iter_lines()):
                if line.startswith("data: "):
                    times.append((time.monotonic() - t0) * 1000)
                    names.append(line[len("data: "):])
        end = (time.monotonic() - t0) * 1000
    print(f"{label}_events=" + ",".join(names))
    print(f"{label}_arrivals_ms=" + ",".join(f"{t:.0f}" for t in times))
    print(f"{label}_end_ms={end:.0f}")
    # The causal proof: the second event comes ten minutes after the first, so holding the
    # first one at all (well within the timeout) means nothing on the path buffers the stream.
    with httpx.Client(http2=http2, timeout=60) as c:
        t0 = time.monotonic()
        url = f"https://{host}/sse?n=2&interval_ms=600000&c=httpx-{label}-held"
        with c.stream("GET", url) as r:
            for line in map(str.rstrip, r.iter_lines()):
                if line.startswith("data: "):
                    print(f"{label}_held_first={line[len('data: '):]}")
                    print(f"{label}_held_first_ms={(time.monotonic() - t0) * 1000:.0f}")
                    break


sse("sse_h1", False)
sse("sse_h2", True)
