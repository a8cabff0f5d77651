#!/usr/bin/env python3
"""A tiny HTTPS Server-Sent Events origin for benches/run (W6).

GET /sse answers 200 text/event-stream (chunked) and sends EVENTS events: the first one
right after the response head, then one every INTERVAL ms, then ends the response. The
connection stays open for the next request (keep-alive). Anything else: 404.
Only standard library; one thread per connection.
"""
import argparse
import socket
import socketserver
import ssl
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:18445")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--events", type=int, default=20)
    p.add_argument("--interval-ms", type=float, default=50.0)
    return p.parse_args()


ARGS = parse_args()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while self.one_request():
                pass
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    def one_request(self) -> bool:
        line = self.rfile.readline(8192)
        if not line:
            return False
        length = 0
        while True:
            h = self.rfile.readline(8192)
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip() or 0)
        if length:
            self.rfile.read(length)
        parts = line.split()
        path = parts[1].decode("latin-1") if len(parts) > 1 else "/"
        out = self.wfile
        if not path.startswith("/sse"):
            out.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: 10\r\n\r\nnot found\n")
            out.flush()
            return True
        out.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                  b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
        start = time.monotonic()
        interval = ARGS.interval_ms / 1000.0
        for i in range(ARGS.events):
            due = start + i * interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            out.write(chunk(b"id: %d\ndata: {\"n\": %d, \"t\": %.6f}\n\n" % (i, i, time.time())))
            out.flush()
        out.write(b"0\r\n\r\n")
        out.flush()
        return True


class Server(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024

    def get_request(self):
        sock, addr = super().get_request()
        # handshake lazily, in the connection's own thread
        return CTX.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


CTX = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
CTX.load_cert_chain(ARGS.cert, ARGS.key)
CTX.set_alpn_protocols(["http/1.1"])

if __name__ == "__main__":
    host, port = ARGS.listen.rsplit(":", 1)
    with Server((host, int(port)), Handler) as srv:
        srv.serve_forever()
