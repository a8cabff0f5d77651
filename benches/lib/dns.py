#!/usr/bin/env python3
"""A loopback DNS responder for the benchmark namespace (UDP, standard library only).

Answers A queries from a hosts file (the namespace's /etc/hosts, read once at start):
a known name gets its IPv4 address, an unknown one NXDOMAIN; other types of a known name get
an empty NOERROR answer. Resolvers that go to DNS instead of reading /etc/hosts themselves
(hickory in pipelock and egress) thus see the same names as everyone else, and no query
leaves 127.0.0.1.
"""
import argparse
import socket
import struct


def load_hosts(path):
    names = {}
    for line in open(path):
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0].count(".") == 3:
            for n in words[1:]:
                names.setdefault(n.lower().rstrip("."), socket.inet_aton(words[0]))
    return names


def parse_question(msg):
    i, labels = 12, []
    while True:
        n = msg[i]
        if n == 0:
            i += 1
            break
        labels.append(msg[i + 1:i + 1 + n].decode("ascii", "replace"))
        i += 1 + n
    qtype, qclass = struct.unpack("!HH", msg[i:i + 4])
    return ".".join(labels).lower(), qtype, qclass, msg[12:i + 4]


def answer(msg, names):
    qid, flags = struct.unpack("!HH", msg[:4])
    name, qtype, qclass, question = parse_question(msg)
    addr = names.get(name)
    rd = flags & 0x0100
    if addr is None:
        return struct.pack("!HHHHHH", qid, 0x8083 | rd, 1, 0, 0, 0) + question  # NXDOMAIN
    if qtype != 1 or qclass != 1:
        return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, 0, 0, 0) + question  # NODATA
    rr = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + addr
    return struct.pack("!HHHHHH", qid, 0x8480 | rd, 1, 1, 0, 0) + question + rr


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", default="127.0.0.1:53")
    ap.add_argument("--hosts", default="/etc/hosts")
    a = ap.parse_args()
    names = load_hosts(a.hosts)
    host, port = a.listen.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((host, int(port)))
    while True:
        msg, peer = s.recvfrom(4096)
        try:
            s.sendto(answer(msg, names), peer)
        except (IndexError, struct.error, UnicodeError):
            continue


if __name__ == "__main__":
    main()
