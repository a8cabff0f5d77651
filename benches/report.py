#!/usr/bin/env python3
"""Summarise a benches/run result directory: summary.md, rss.tsv and plot.png from runs.tsv.

usage: report.py OUTDIR      (re-runnable: needs only OUTDIR/runs.tsv; sanity.tsv is optional)
Medians over repeats; ratio to direct in parentheses; a "chain vs squid" column; Goals.
"""
import csv
import os
import statistics
import sys

ORDER = ["direct", "mitmproxy", "squid", "tinyproxy", "relay2", "pipelock", "chain"]
SSE_INTERVAL_MS = 50.0
TUNNELS = 1000


def load(out):
    rows = list(csv.DictReader(open(os.path.join(out, "runs.tsv")), delimiter="\t"))
    for r in rows:
        r["x"] = dict(kv.split("=", 1) for kv in (r.get("extra") or "").split(";") if "=" in kv)
    return rows


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


class Data:
    def __init__(self, rows):
        self.rows = rows
        seen = [r["peer"] for r in rows if r["workload"] not in ("w9", "img")]
        self.peers = [p for p in ORDER if p in seen] + sorted(
            {p for p in seen if p not in ORDER}, key=seen.index)

    def runs(self, peer, wl):
        return [r for r in self.rows if r["peer"] == peer and r["workload"] == wl]

    def good(self, peer, wl):
        return [r for r in self.runs(peer, wl) if not r["note"]]

    def med(self, peer, wl, col):
        v = [num(r[col]) if col in r else num(r["x"].get(col)) for r in self.good(peer, wl)]
        v = [x for x in v if x is not None]
        return statistics.median(v) if v else None

    def note(self, peer, wl):
        notes = {r["note"] for r in self.runs(peer, wl) if r["note"]}
        return sorted(notes)[0] if notes and not self.good(peer, wl) else None

    def procs(self, peer):
        names = []
        for r in self.rows:
            if r["peer"] == peer:
                for k in r["x"]:
                    if k.startswith("hwm_") and k[4:] not in names:
                        names.append(k[4:])
        return names

    def per_tunnel(self, peer, proc):
        v = []
        for r in self.good(peer, "w7"):
            b, h, n = num(r["x"].get(f"before_{proc}")), num(r["x"].get(f"held_{proc}")), num(
                r["x"].get("tunnels"))
            if None not in (b, h) and n:
                v.append((h - b) / n)
        return statistics.median(v) if v else None

    def peak_mib(self, peer, proc):
        v = [num(r["x"].get(f"hwm_{proc}")) for r in self.rows if r["peer"] == peer]
        v = [x for x in v if x is not None]
        return max(v) / 1024 if v else None

    def failed(self, peer, wl=None):
        return sum(int(num(r["failed"]) or 0) for r in self.rows
                   if r["peer"] == peer and (wl is None or r["workload"] == wl))


# label, workload, column, format; column "x:KEY" reads the extra field KEY
METRICS = [
    ("W1 c=1 keep-alive GET /small, req/s", "w1c1", "rate", "{:.0f}"),
    ("W1 c=1 p50 ms", "w1c1", "p50_ms", "{:.3f}"),
    ("W1 c=1 p99 ms", "w1c1", "p99_ms", "{:.3f}"),
    ("W1 c=32 keep-alive GET /small, req/s", "w1c32", "rate", "{:.0f}"),
    ("W1 c=32 p50 ms", "w1c32", "p50_ms", "{:.2f}"),
    ("W1 c=32 p99 ms", "w1c32", "p99_ms", "{:.2f}"),
    ("W2 c=8 new CONNECT+TLS per request, conn/s", "w2", "rate", "{:.0f}"),
    ("W2 p50 ms", "w2", "p50_ms", "{:.2f}"),
    ("W2 p99 ms", "w2", "p99_ms", "{:.2f}"),
    ("W3 64 MiB GET, 1 connection, MB/s", "w3", "mb_s", "{:.0f}"),
    ("W4 256 MiB upload (DLP on), MB/s", "w4", "mb_s", "{:.0f}"),
    ("W5 1,000 new host names, hosts/s", "w5", "rate", "{:.0f}"),
    ("W5 p50 ms", "w5", "p50_ms", "{:.2f}"),
    ("W6 SSE first event p50 ms", "w6", "first_event_p50_ms", "{:.2f}"),
    ("W6 SSE gap p50 ms (origin: 50)", "w6", "gap_p50_ms", "{:.2f}"),
    ("W6 SSE gap max ms", "w6", "gap_max_ms", "{:.2f}"),
    ("W8 reload applied p50 ms", "w8", "applied_p50_ms", "{:.2f}"),
    ("W8 reload applied max ms", "w8", "applied_max_ms", "{:.2f}"),
    ("W8 req/s during reloads (c=8)", "w8", "rate", "{:.0f}"),
]
HIGHER = {"rate", "mb_s"}


def cell(d, peer, wl, col, fmt, ratio=True):
    if not d.runs(peer, wl):
        return "-"
    n = d.note(peer, wl)
    if n:
        return n
    v = d.med(peer, wl, col)
    if v is None:
        return "-"
    s = fmt.format(v)
    base = d.med("direct", wl, col)
    if ratio and peer != "direct" and base:
        s += f" ({v / base:.2f}x)"
    return s


def table(d):
    chain = "chain" in d.peers and "squid" in d.peers
    head = ["metric (median of runs)"] + d.peers + (["chain vs squid"] if chain else [])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, wl, col, fmt in METRICS:
        if not any(d.runs(p, wl) for p in d.peers):
            continue
        cells = [cell(d, p, wl, col, fmt) for p in d.peers]
        if chain:
            c, s = d.med("chain", wl, col), d.med("squid", wl, col)
            cells.append(f"{c / s:.2f}x" if c is not None and s else "-")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    if any(d.runs(p, "w6") for p in d.peers):
        cells = []
        for p in d.peers:
            v, b = d.med(p, "w6", "first_event_p50_ms"), d.med("direct", "w6", "first_event_p50_ms")
            cells.append("-" if p == "direct" or v is None or b is None else f"{v - b:+.2f}")
        out.append("| W6 first event added vs direct, ms | " + " | ".join(cells) + (" | |" if chain else " |"))

    def per_proc(fn, fmt):
        cells = []
        for p in d.peers:
            vals = [(n, fn(p, n)) for n in d.procs(p)]
            vals = [(n, v) for n, v in vals if v is not None]
            if not vals:
                cells.append("-")
            elif len(vals) == 1:
                cells.append(fmt.format(vals[0][1]))
            else:
                cells.append(" / ".join(f"{n} {fmt.format(v)}" for n, v in vals))
        return " | ".join(cells) + (" | |" if chain else " |")

    def idle(p, n):
        v = [num(r["x"].get(f"idle_{n}")) for r in d.runs(p, "idle")]
        v = [x for x in v if x is not None]
        return v[0] / 1024 if v else None

    def cpu_us(wl):
        # CPU seconds of the process during the run over the requests it served, median
        def f(p, n):
            v = [num(r["x"].get(f"cpu_{n}")) * 1e6 / num(r["ok"]) for r in d.good(p, wl)
                 if num(r["x"].get(f"cpu_{n}")) is not None and num(r["ok"])]
            return statistics.median(v) if v else None
        return f

    for wl, label in (("w1c1", "W1 c=1"), ("w1c32", "W1 c=32")):
        if any(k.startswith("cpu_") for p in d.peers for r in d.runs(p, wl) for k in r["x"]):
            out.append(f"| {label} CPU per request (user+system), µs | " + per_proc(cpu_us(wl), "{:.0f}"))
    out.append("| idle RSS after warm-up, MiB | " + per_proc(idle, "{:.1f}"))
    if any(d.runs(p, "w7") for p in d.peers):
        w7note = {p: d.note(p, "w7") for p in d.peers}
        line = per_proc(d.per_tunnel, "{:.1f}")
        if all(w7note[p] or p == "direct" for p in d.peers):
            line = " | ".join(w7note[p] or "-" for p in d.peers) + (" | |" if chain else " |")
        out.append("| W7 RSS per idle tunnel (1,000 held), KiB | " + line)
    out.append("| peak RSS, max over workloads (VmHWM), MiB | " + per_proc(d.peak_mib, "{:.1f}"))
    out.append("| failed requests, all runs | " + " | ".join(str(d.failed(p)) for p in d.peers)
               + (" | |" if chain else " |"))
    return out


def sanity_rows(out, d):
    path = os.path.join(out, "sanity.tsv")
    if not os.path.exists(path):
        return []
    san = {r["peer"]: r for r in csv.DictReader(open(path), delimiter="\t")}
    extra = " | |" if "chain" in d.peers and "squid" in d.peers else " |"
    return [
        "| client saw cert issued by | " + " | ".join(san.get(p, {}).get("issuer_seen_by_client", "?") for p in d.peers) + extra,
        "| blocked.test CONNECT/status | " + " | ".join(san.get(p, {}).get("blocked_connect/code", "?") for p in d.peers) + extra,
    ]


def goals(d):
    res = []

    def add(goal, measured, ok):
        res.append((goal, measured, "n/a" if ok is None else ("pass" if ok else "FAIL")))

    def ratio(a, wl, col, b):
        x, y = d.med(a, wl, col), d.med(b, wl, col)
        return (x / y) if x is not None and y else None

    for c in ("w1c1", "w1c32"):
        r = ratio("chain", c, "rate", "squid")
        add(f"W1 {c[2:]}: chain req/s >= 2x squid", "-" if r is None else f"{r:.2f}x", None if r is None else r >= 2)
    a, b = d.med("pipelock", "w1c1", "p50_ms"), d.med("direct", "w1c1", "p50_ms")
    add("W1 c=1: pipelock p50 added over direct <= 0.03 ms",
        "-" if None in (a, b) else f"{a - b:+.3f} ms", None if None in (a, b) else a - b <= 0.03)
    r = ratio("chain", "w2", "rate", "direct")
    add("W2: chain conn/s >= 0.9x direct", "-" if r is None else f"{r:.2f}x", None if r is None else r >= 0.9)
    r = ratio("chain", "w3", "mb_s", "direct")
    add("W3: chain MB/s >= 0.8x direct", "-" if r is None else f"{r:.2f}x", None if r is None else r >= 0.8)
    for p in ("pipelock", "chain"):
        v = d.med(p, "w4", "mb_s")
        add(f"W4: {p} upload MB/s >= 500", d.note(p, "w4") or ("-" if v is None else f"{v:.0f}"),
            None if v is None else v >= 500)
    for p in ("pipelock", "chain"):
        v = d.med(p, "w5", "rate")
        add(f"W5: {p} hosts/s >= 2000", d.note(p, "w5") or ("-" if v is None else f"{v:.0f}"),
            None if v is None else v >= 2000)
    b = d.med("direct", "w6", "first_event_p50_ms")
    for p in ("pipelock", "chain"):
        v = d.med(p, "w6", "first_event_p50_ms")
        ok = None if None in (v, b) else v - b <= 1.0
        add(f"W6: {p} SSE first event added <= 1 ms", d.note(p, "w6") or (
            "-" if ok is None else f"{v - b:+.2f} ms"), ok)
    for p in ("pipelock", "chain"):
        for n in d.procs(p):
            v = d.per_tunnel(p, n)
            add(f"W7: {p if n == p else p + '/' + n} RSS per idle tunnel <= 16 KiB", d.note(p, "w7") or (
                "-" if v is None else f"{v:.1f} KiB"), None if v is None else v <= 16)
    for p in ("pipelock", "chain"):
        for n in d.procs(p):
            v = d.peak_mib(p, n)
            add(f"peak RSS: {p if n == p else p + '/' + n} <= 16 MiB under every workload", "-" if v is None else f"{v:.1f} MiB",
                None if v is None else v <= 16)
    for p in ("pipelock", "chain"):
        m, p50 = d.med(p, "w8", "applied_max_ms"), d.med(p, "w8", "applied_p50_ms")
        add(f"W8: {p} reload applied < 10 ms (max of 100)", "-" if m is None else f"p50 {p50:.2f} / max {m:.2f} ms",
            None if m is None else m < 10)
        runs = d.good(p, "w8")
        f = sum(int(num(r["failed"]) or 0) for r in runs)
        t = sum(int(num(r["x"].get("timeouts")) or 0) for r in runs)
        add(f"W8: {p} 0 failed requests over 100 reloads", f"{f} failed, {t} reload timeouts" if runs else "-",
            (f == 0 and t == 0) if runs else None)
    v = d.med("bottle", "w9", "secs")
    add("W9: bottle start -> agent ready < 3 s (median)", d.note("bottle", "w9") or (
        "-" if v is None else f"{v:.2f} s"), None if v is None else v < 3)
    for p in ("pipelock", "egress"):
        r = [num(x["x"].get("bytes")) for x in d.runs(p, "img")]
        r = [x for x in r if x]
        add(f"image bottle-{p} < 10 MB", f"{r[0] / 1e6:.1f} MB" if r else "-", (r[0] < 10e6) if r else None)
    return ["| goal | measured | result |", "|---|---|---|"] + [f"| {g} | {m} | {ok} |" for g, m, ok in res]


def write_rss(out, d):
    with open(os.path.join(out, "rss.tsv"), "w") as f:
        f.write("peer\tworkload\trep\tprocess\tkind\tKiB\n")
        for r in d.rows:
            for k, v in r["x"].items():
                kind, _, proc = k.partition("_")
                if kind in ("hwm", "idle", "before", "held") and proc and v:
                    f.write(f"{r['peer']}\t{r['workload']}\t{r['rep']}\t{proc}\t{kind}\t{v}\n")


def plot(out, d):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing, no plot.png", file=sys.stderr)
        return
    panels = [("W1 c=1 keep-alive, req/s", "w1c1", "rate"), ("W1 c=32 keep-alive, req/s", "w1c32", "rate"),
              ("W2 new conn per request, conn/s", "w2", "rate"), ("W3 64 MiB download, MB/s", "w3", "mb_s"),
              ("W4 256 MiB upload (DLP), MB/s", "w4", "mb_s"), ("W5 new host names, hosts/s", "w5", "rate")]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5))
    colours = {"direct": "#888888", "mitmproxy": "#e07b39", "squid": "#4f81bd", "tinyproxy": "#9bbb59",
               "relay2": "#c6d9a0",
               "pipelock": "#8064a2", "chain": "#c0504d"}
    for ax, (title, wl, col) in zip(axes.flat, panels):
        peers = [p for p in d.peers if d.med(p, wl, col) is not None]
        vals = [d.med(p, wl, col) for p in peers]
        bars = ax.bar(range(len(peers)), vals, color=[colours.get(p, "#4bacc6") for p in peers])
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.0f}", (b.get_x() + b.get_width() / 2, b.get_height()),
                        ha="center", va="bottom", fontsize=9)
        ax.set_xticks(range(len(peers)))
        ax.set_xticklabels(peers, rotation=25, ha="right", fontsize=10)
        ax.set_title(title, fontsize=11)
        ax.grid(axis="y", alpha=0.3)
        ax.set_ylim(0, max(vals) * 1.15 if vals else 1)
    env = os.path.join(out, "env.txt")
    sub = ""
    if os.path.exists(env):
        kv = dict(l.split(": ", 1) for l in open(env).read().splitlines() if ": " in l)
        run = kv.get("duration_s", "? ").split()
        reps = run[2] if len(run) > 2 else "?"
        sub = f" — {kv.get('nproc', '?')} cores ({kv.get('cpu', '')}), {run[0]} s per run, {reps} repeat(s)"
    fig.suptitle("bottle benches: medians per peer (loopback)" + sub, fontsize=12)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "plot.png"), dpi=90)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    if not os.path.exists(os.path.join(out, "runs.tsv")):
        sys.exit(f"report: no {out}/runs.tsv")
    d = Data(load(out))
    write_rss(out, d)
    lines = ["# bottle benchmark summary", ""]
    env = os.path.join(out, "env.txt")
    if os.path.exists(env):
        lines += ["```", open(env).read().strip(), "```", ""]
    lines += table(d) + sanity_rows(out, d) + ["", "## Goals", ""] + goals(d)
    w9 = d.runs("bottle", "w9")
    if w9:
        lines += ["", "W9 runs (s): " + ", ".join(r["secs"] or r["note"] for r in w9)]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    plot(out, d)


if __name__ == "__main__":
    main()
