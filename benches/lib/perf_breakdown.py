#!/usr/bin/env python3
"""Where a sidecar's CPU goes: one `perf record` file summed into a few named buckets.

usage: perf_breakdown.py PERF_DATA [TITLE]

Reads `perf report --no-children --sort dso,sym` of the file and prints a Markdown table of
buckets (kernel, allocator, copies, TLS, HTTP, runtime, DLP, proxy logic, other) with their
share of the samples, then the 12 hottest symbols. The buckets are what docs/benchmarks.md
"What bounds each number" cites; the rules below are the whole method.
"""
import re
import subprocess
import sys

# First match wins: (bucket, dso regex or None, symbol regex).
RULES = [
    ("kernel: network and syscalls", r"kernel", r"tcp|sock|skb|ip_|ipv4|ipt_|nf_|netif|net_|"
     r"__x64_sys|syscall|do_writev|vfs_|ksys_|copy_user|rep_movs|loopback|napi|__dev_"),
    ("kernel: scheduling and wakeups", r"kernel", r"sched|switch|wake|futex|schedule|idle|"
     r"irq|ttwu|enqueue|dequeue|select_task|update_curr|pick_next|hrtimer|rcu"),
    ("kernel: other", r"kernel", r""),
    ("allocator (malloc/free)", None, r"malloc|_int_free|cfree|free$|realloc|unlink_chunk|"
     r"consolidate|tcache|sysmalloc|calloc|mi_"),
    ("memory copies (memcpy/memmove/memset)", None, r"mem(move|cpy|set|cmp)|__memchr"),
    ("TLS (rustls, ring)", None, r"rustls|ring::|ring_core|aes|gcm|chacha|poly1305|sha256|"
     r"sha512|ecp_nistz|p256|x25519|bn_|GFp|tokio_rustls"),
    ("HTTP (hyper, h2, http, httparse)", None, r"hyper|\bh2::|^h2|http::|httparse|http_body"),
    ("runtime (tokio, futures, mio)", None, r"tokio|futures|mio::|parking_lot|std::sync|"
     r"std::thread|__lll_|pthread|epoll"),
    ("DLP and injection scanning", None, r"bottle_dlp|regex|aho_corasick|memchr"),
    ("proxy logic (pipelock, egress, bottle_core)", None, r"pipelock::|egress::|bottle_core::"),
    ("other", None, r""),
]


def bucket(dso: str, sym: str) -> str:
    for name, dso_re, sym_re in RULES:
        if dso_re is not None and not re.search(dso_re, dso):
            continue
        if dso_re is None and "kernel" in dso:
            continue
        if re.search(sym_re, sym):
            return name
    return "other"


def main() -> int:
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    data = sys.argv[1]
    title = sys.argv[2] if len(sys.argv) > 2 else data
    out = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
         "-g", "none", "--percent-limit", "0"],
        capture_output=True, text=True, check=False).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
    if not rows:
        print(f"no samples in {data}", file=sys.stderr)
        return 1
    total = sum(r[0] for r in rows)
    sums: dict = {}
    for pct, dso, sym in rows:
        b = bucket(dso, sym)
        sums[b] = sums.get(b, 0.0) + pct
    print(f"#### {title}\n")
    print("| where the CPU went | share of samples |")
    print("|---|---|")
    for name, _, _ in RULES:
        if name in sums:
            print(f"| {name} | {sums[name] / total * 100:.1f} % |")
    print("\nhottest symbols:\n")
    for pct, dso, sym in sorted(rows, reverse=True)[:12]:
        print(f"- {pct / total * 100:.1f} % `{sym[:110]}` ({dso})")
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
