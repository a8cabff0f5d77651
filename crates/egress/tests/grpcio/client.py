"""A grpcio client for the chain tests: the agent's side, through pipelock
(https_proxy in the environment; grpcio sends CONNECT to it).

argv: TARGET (host:port) CA_PEM (the bottle CA) SECRET (a DLP-detectable fake token).
Prints one JSON object with what each call returned.
"""
import json
import queue
import sys

import grpc


def main():
    target, ca, secret = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    out = {}
    with grpc.secure_channel(target, creds) as ch:
        unary = ch.unary_unary("/demo.Echo/Unary")
        resp, call = unary.with_call(b"ping", metadata=(("authorization", "Bearer agent-own"),), timeout=20)
        out["unary"] = resp.decode()
        out["unary_trailers"] = dict(call.trailing_metadata())
        out["unary_code"] = call.code().name

        # bidirectional: the next message is sent only once the previous answer came back
        q = queue.Queue()

        def requests():
            while True:
                m = q.get()
                if m is None:
                    return
                yield m

        bidi = ch.stream_stream("/demo.Echo/Bidi")
        it = bidi(requests(), timeout=20)
        got = []
        for m in [b"one", b"two", b"three"]:
            q.put(m)
            got.append(next(it).decode())
        q.put(None)
        out["bidi"] = got
        out["bidi_code"] = it.code().name

        for name, method, msg in [
            ("fail", "/demo.Echo/Fail", b"x"),
            ("secret", "/demo.Echo/Unary", b"key=" + secret.encode()),
            ("reflect", "/demo.Echo/Reflect", b"x"),
        ]:
            try:
                r = ch.unary_unary(method)(msg, timeout=20)
                out[name] = {"ok": r.decode(errors="replace")}
            except grpc.RpcError as e:
                out[name] = {"code": e.code().name, "details": e.details()}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
