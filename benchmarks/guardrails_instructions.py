#!/usr/bin/env python3
"""Instructions per request of each guardrails configuration, counted by valgrind (callgrind).

guardrails_bench.py measures throughput, the figure the targets are written in; on this shared
2-core machine its per-round ratios spread from 0.6 to 1.2 and its medians move by several
points between runs. The number of instructions a gateway executes per request does not depend
on the neighbours: it is the same from one run to the next to a fraction of a percent. For a
saturated single worker, whose throughput is the inverse of its CPU time per request, the
ratio of instruction counts is a noise-free estimate of the throughput ratio (it ignores cache
and memory effects, and the time a strict-mode request waits for fdatasync, which costs no CPU).

Each configuration of guardrails_bench.py (same config files, same nginx upstream) runs under
callgrind, in turn, in one invocation; after a warm-up, `callgrind_control --dump` brackets N
sequential keep-alive `GET /info` requests (all threads of the gateway counted: the audit
writer too).

Usage: python3 benchmarks/guardrails_instructions.py [--requests 1000] [--only policy,audit-batch] [--keep DIR]
(about 2 minutes per configuration; needs valgrind)
"""

from __future__ import annotations

import argparse
import glob
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import guardrails_bench as gb  # noqa: E402
from proxy_bench import SMALL_JSON, free_port, wait_port  # noqa: E402


def load(port: int, token: str | None, n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    for _ in range(n):
        conn.request("GET", "/info", headers=headers)
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET /info answered {resp.status}")
    conn.close()


def dump_total(pid: int, out: Path, keep: Path | None = None) -> int:
    """Dump the counters (which also zeroes them) and return the instructions since the last dump.
    `keep`: copy the dump there (for callgrind_annotate)."""
    for f in glob.glob(f"{out}/cg.*"):
        os.unlink(f)
    subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, check=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for f in glob.glob(f"{out}/cg.*"):
            for line in Path(f).read_text(errors="replace").splitlines():
                if line.startswith(("summary:", "totals:")):
                    if keep is not None:
                        shutil.copy(f, keep)
                    return int(line.split()[1])
        time.sleep(0.2)
    raise RuntimeError("callgrind did not dump its counters")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--only", default="passthrough,policy,audit-batch,audit-strict,all")
    ap.add_argument("--keep", metavar="DIR", help="keep each configuration's callgrind dump of the measured "
                                                 "requests as DIR/NAME.callgrind (read it with callgrind_annotate)")
    args = ap.parse_args()
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("valgrind is not installed (apt-get install valgrind)")
        return 2
    names = args.only.split(",")
    python = os.path.realpath(sys.executable)  # not a pyenv shim: valgrind must run Python itself
    per_request: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="gw-icount-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o755)
        (d / "www").mkdir()
        (d / "www" / "info.json").write_bytes(SMALL_JSON)
        (d / "www" / "stream.sse").write_bytes(b"data: {}\n\n")
        (d / "www" / "thread.json").write_text("{}")
        (d / "policy.toml").write_text(gb.POLICY)
        token = gb.make_identity(d)
        up = free_port()
        (d / "upstream.conf").write_text(gb.NGINX.format(dir=d, port=up, thread=gb.THREAD, run=gb.RUN))
        nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(d / "upstream.conf")])
        try:
            wait_port(up)
            for name in names:
                port = free_port()
                cfg = d / f"gw-{name}.toml"
                cfg.write_text(gb.gateway_toml(port, up, d, name))
                out = d / f"cg-{name}"
                out.mkdir()
                gw = subprocess.Popen(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p", "--dump-instr=no",
                     python, "-m", "graphwarden", "serve", "--config", str(cfg)],
                    stdout=subprocess.DEVNULL, stderr=open(d / f"{name}.log", "wb"))
                try:
                    wait_port(port, 600)
                    tok = None if name == "passthrough" else token
                    load(port, tok, 300)  # warm-up: caches, JWKS, first segment
                    dump_total(gw.pid, out)
                    load(port, tok, args.requests)
                    keep = Path(args.keep) / f"{name}.callgrind" if args.keep else None
                    if keep is not None:
                        keep.parent.mkdir(parents=True, exist_ok=True)
                    per_request[name] = dump_total(gw.pid, out, keep) / args.requests
                finally:
                    gw.send_signal(signal.SIGTERM)
                    try:
                        gw.wait(300)
                    except subprocess.TimeoutExpired:
                        gw.kill()
                print(f"  {name:<14} {per_request[name]:>12,.0f} instructions per request", flush=True)
        finally:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(10)

    def ratio(a: str, b: str) -> str:
        if a not in per_request or b not in per_request:
            return "n/a"
        return f"{per_request[b] / per_request[a]:.3f}"

    print("\nsummary (throughput predicted from instructions per request: cheaper is faster)")
    print(f"  policy / passthrough        (target >= 0.85) = {ratio('policy', 'passthrough')}")
    print(f"  audit-batch / policy        (target >= 0.90) = {ratio('audit-batch', 'policy')}")
    print(f"  audit-strict / policy       (target >= 0.75) = {ratio('audit-strict', 'policy')}  (CPU only; not the fdatasync waits)")
    print(f"  all / passthrough           (target >= 0.60) = {ratio('all', 'passthrough')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
