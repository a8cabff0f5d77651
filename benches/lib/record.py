#!/usr/bin/env python3
"""Append one row to runs.tsv from a load generator's output.

usage: record.py RUNS_TSV PEER WORKLOAD REP (--oha FILE | --loadgen FILE | --none)
                 [--set KEY=VALUE]... [--extra 'k=v;k=v'] [--note TEXT]

--oha      oha --output-format json
--loadgen  loadgen's line `requests=.. errors=.. secs=.. rps=.. p50_ms=.. p99_ms=.. mb_per_s=..`
           or its --json object (also the urls and sse modes)
--none     only what --set / --extra give
Every value that is not a column goes to `extra` as k=v (';'-separated).
"""
import argparse
import json
import os
import re
import sys

COLUMNS = ["peer", "workload", "rep", "ok", "failed", "secs", "rate", "p50_ms", "p99_ms",
           "mb_s", "extra", "note"]


def from_oha(path):
    d = json.load(open(path))
    s = d["summary"]
    lp = d.get("latencyPercentiles") or {}
    codes = d.get("statusCodeDistribution") or {}
    ok = sum(v for k, v in codes.items() if k == "200")
    failed = sum((d.get("errorDistribution") or {}).values()) + sum(
        v for k, v in codes.items() if k != "200")
    total = s.get("total") or 0.0
    return {
        "ok": ok, "failed": failed, "secs": total,
        "rate": ok / total if total else 0.0,
        "p50_ms": (lp.get("p50") or 0) * 1e3, "p99_ms": (lp.get("p99") or 0) * 1e3,
        "mb_s": (s.get("totalData") or 0) / total / 1e6 if total else 0.0,
    }


def from_loadgen(path):
    text = open(path).read().strip()
    obj = None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            obj = json.loads(line)
            break
    if obj is None:
        line = next((l for l in reversed(text.splitlines()) if "requests=" in l), "")
        obj = {k: float(v) for k, v in re.findall(r"(\w+)=([0-9.eE+-]+)", line)}
        if not obj:
            raise ValueError(f"no loadgen result in {path}")
    out = {}
    ok = obj.pop("ok", None)
    req = obj.pop("requests", None)
    out["ok"] = ok if ok is not None else req
    failed = obj.pop("failed", None)
    errors = obj.pop("errors", None)
    out["failed"] = failed if failed is not None else errors
    out["secs"] = obj.pop("secs", None)
    rate = obj.pop("per_sec", None)
    rps = obj.pop("rps", None)
    out["rate"] = rate if rate is not None else rps
    for k in ("p50_ms", "p99_ms"):
        out[k] = obj.pop(k, None)
    out["mb_s"] = obj.pop("mb_per_s", None)
    mode = obj.pop("mode", None)
    extra = {k: v for k, v in obj.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if mode:
        extra["mode"] = mode
    return out, extra


def fmt(v):
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return f"{v:.3f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.0f}"
    return str(v)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs")
    ap.add_argument("peer")
    ap.add_argument("workload")
    ap.add_argument("rep")
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--oha")
    g.add_argument("--loadgen")
    g.add_argument("--none", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--extra", default="")
    ap.add_argument("--note", default="")
    a = ap.parse_args()

    row = {c: "" for c in COLUMNS}
    row.update(peer=a.peer, workload=a.workload, rep=a.rep, note=a.note)
    extra = {}
    try:
        if a.oha:
            row.update(from_oha(a.oha))
        elif a.loadgen:
            vals, extra = from_loadgen(a.loadgen)
            row.update(vals)
    except Exception as e:  # noqa: BLE001 - a failed run is recorded, not fatal
        print(f"record: {a.workload} {a.peer}: {e}", file=sys.stderr)
        row["note"] = (row["note"] + " " if row["note"] else "") + "error: no result"
    for kv in a.set:
        k, _, v = kv.partition("=")
        if k in COLUMNS:
            row[k] = v
        else:
            extra[k] = v
    for kv in filter(None, a.extra.split(";")):
        k, _, v = kv.partition("=")
        extra[k] = v
    row["extra"] = ";".join(f"{k}={fmt(v)}" for k, v in extra.items())
    new = not os.path.exists(a.runs) or os.path.getsize(a.runs) == 0
    with open(a.runs, "a") as f:
        if new:
            f.write("\t".join(COLUMNS) + "\n")
        f.write("\t".join(fmt(row[c]).replace("\t", " ") for c in COLUMNS) + "\n")
    shown = {c: row[c] for c in ("ok", "failed", "rate", "p50_ms", "p99_ms", "mb_s")}
    print(f"  {a.peer:<12} {a.workload:<6} #{a.rep} " +
          " ".join(f"{k}={fmt(v)}" for k, v in shown.items() if fmt(v) != "") +
          (f" {row['extra']}" if row["extra"] else "") + (f" [{row['note']}]" if row["note"] else ""),
          file=sys.stderr)


if __name__ == "__main__":
    main()
