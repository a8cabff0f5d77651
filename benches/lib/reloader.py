#!/usr/bin/env python3
"""W8: reload a sidecar's live config COUNT times, INTERVAL ms apart, while load runs.

Each reload writes a new allowlist (the original plus a line `reload-N.test`) to a temp file
in the config dir and renames it over `allowlist` (os.replace, as `bottle allow` does), sends
SIGHUP to every PID, then polls every status file (0.2 ms apart) until its "generation" is
higher than before. applied = SIGHUP sent -> new generation seen in every status file.
Prints one JSON object: reloads, applied_p50_ms, applied_max_ms, timeouts, load_errors.
"""
import argparse
import json
import os
import signal
import statistics
import sys
import time


def generation(path):
    """(generation, last_error) from a status file, or (None, None) while unreadable."""
    try:
        with open(path) as f:
            d = json.load(f)
        return d.get("generation"), d.get("last_error")
    except (OSError, ValueError):
        return None, None


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config-dir", required=True)
    ap.add_argument("--pid", type=int, action="append", required=True)
    ap.add_argument("--status", action="append", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--interval-ms", type=float, default=100.0)
    ap.add_argument("--timeout-ms", type=float, default=2000.0)
    a = ap.parse_args()

    allow = os.path.join(a.config_dir, "allowlist")
    with open(allow) as f:
        base = f.read()
    applied, timeouts, load_errors = [], 0, 0
    start = time.monotonic()
    try:
        for n in range(1, a.count + 1):
            due = start + (n - 1) * a.interval_ms / 1000.0
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            before = [generation(s)[0] for s in a.status]
            tmp = os.path.join(a.config_dir, f".allowlist.tmp.{os.getpid()}")
            with open(tmp, "w") as f:
                f.write(base + f"reload-{n}.test\n")
            os.replace(tmp, allow)
            t0 = time.monotonic()
            for pid in a.pid:
                os.kill(pid, signal.SIGHUP)
            pending = set(range(len(a.status)))
            deadline = t0 + a.timeout_ms / 1000.0
            while pending and time.monotonic() < deadline:
                for i in list(pending):
                    g, err = generation(a.status[i])
                    if g is not None and (before[i] is None or g > before[i]):
                        pending.discard(i)
                        if err:
                            load_errors += 1
                if pending:
                    time.sleep(0.0002)
            if pending:
                timeouts += 1
            else:
                applied.append((time.monotonic() - t0) * 1000.0)
    finally:
        with open(allow + ".tmp-restore", "w") as f:
            f.write(base)
        os.replace(allow + ".tmp-restore", allow)
        for pid in a.pid:
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass
    out = {
        "reloads": len(applied),
        "applied_p50_ms": round(statistics.median(applied), 3) if applied else None,
        "applied_max_ms": round(max(applied), 3) if applied else None,
        "timeouts": timeouts,
        "load_errors": load_errors,
    }
    print(json.dumps(out))
    return 0 if applied and not timeouts else 1


if __name__ == "__main__":
    sys.exit(main())
