#!/usr/bin/env python3
"""Proxy load benchmark: the upstream directly vs nginx (1 worker) vs graphwarden (1 worker).

One invocation starts everything on loopback, runs the same load generator (wrk) against each
target in turn, and prints requests/s, p50/p99 latency and MB/s side by side with the ratios the
release gate looks at. Absolute numbers depend on the (shared, noisy) machine; ratios are what
count, so every scenario runs the three targets back to back, and `--rounds` repeats that to show
the spread.

Scenarios
  json      GET of a small JSON document (keep-alive, 50 connections)
  post64k   POST of a 64 KiB JSON body, small reply
  sse       GET of a long text/event-stream (32 MiB of events), 4 connections: payload MB/s
  paced     1,000 requests/s from a paced client; p50/p99 latency; added p99 vs direct
  idle      10,000 idle keep-alive connections held by graphwarden: RSS

The upstream is a second nginx (1 worker) serving static files so that it is never the
bottleneck of the proxies under test; graphwarden runs in passthrough (no identity, no masking,
no audit), which is what the issue 2 targets are about.

Usage: python3 benchmarks/proxy_bench.py [--duration 8] [--rounds 1] [--only json,sse] [--json]
Needs: nginx-light and wrk (scripts/install-system-deps --test installs both).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SMALL_JSON = json.dumps(
    {"assistant_id": "fe096781-5601-53d2-b2f6-0d3403f7e9ca", "graph_id": "agent", "name": "agent",
     "metadata": {"created_by": "system"}, "version": 1}
).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def sse_payload(total: int) -> bytes:
    parts = []
    size = 0
    i = 0
    while size < total:
        data = json.dumps({"event": "on_chain_stream", "run_id": "1ef-run", "step": i,
                           "chunk": {"messages": [{"type": "ai", "content": "token " * 20}]}})
        ev = f"event: values\nid: {i}\ndata: {data}\n\n".encode()
        parts.append(ev)
        size += len(ev)
        i += 1
    return b"".join(parts)


NGINX_UPSTREAM = """
user root;
worker_processes 1;
daemon off;
pid {dir}/upstream.pid;
error_log {dir}/upstream-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 1m;
  types {{ application/json json; text/event-stream sse; }}
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
    location = /ok {{ return 200 '{{"ok":true}}'; }}
    location = /upload {{ client_body_buffer_size 128k; return 200 '{{"ok":true}}'; }}
    location = /upload/ {{ return 200 '{{"ok":true}}'; }}
    error_page 405 =200 /small.json;
  }}
}}
"""

NGINX_PROXY = """
user root;
worker_processes 1;
daemon off;
pid {dir}/proxy.pid;
error_log {dir}/proxy-error.log warn;
events {{ worker_connections 20000; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  client_max_body_size 16m;
  upstream up {{ server 127.0.0.1:{up}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_request_buffering off;
    }}
    location /stream.sse {{
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""

GATEWAY_TOML = """
insecure_passthrough = true
[listen]
host = "127.0.0.1"
port = {port}
workers = 1
[upstream]
url = "http://127.0.0.1:{up}"
[limits]
keepalive_timeout_s = 300.0
[logging]
access_log = false
level = "warning"
"""

WRK_POST = """
wrk.method = "POST"
wrk.body = string.rep("x", 65536 - 12)
wrk.body = '{"input":"' .. wrk.body .. '"}'
wrk.headers["Content-Type"] = "application/json"
"""


class Stack:
    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.up = free_port()
        self.nginx = free_port()
        self.gw = free_port()
        self.gw_pid = 0

    def start(self) -> None:
        www = self.dir / "www"
        www.mkdir()
        (www / "small.json").write_bytes(SMALL_JSON)
        (www / "stream.sse").write_bytes(sse_payload(32 << 20))
        (self.dir / "upstream.conf").write_text(NGINX_UPSTREAM.format(dir=self.dir, port=self.up))
        (self.dir / "proxy.conf").write_text(NGINX_PROXY.format(dir=self.dir, port=self.nginx, up=self.up))
        (self.dir / "gw.toml").write_text(GATEWAY_TOML.format(port=self.gw, up=self.up))
        (self.dir / "post.lua").write_text(WRK_POST)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self._spawn([nginx, "-c", str(self.dir / "upstream.conf")])
        self._spawn([nginx, "-c", str(self.dir / "proxy.conf")])
        gw = self._spawn([sys.executable, "-m", "graphwarden", "serve", "--config", str(self.dir / "gw.toml")])
        self.gw_pid = gw.pid
        for port in (self.up, self.nginx, self.gw):
            wait_port(port)

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=open(self.dir / "stderr.log", "ab"))
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


# -- wrk ----------------------------------------------------------------------------------------
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
_BYTES = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, *, connections: int, duration: float, script: Path | None = None,
        cpus: str | None = None) -> dict[str, float]:
    argv = (["taskset", "-c", cpus] if cpus else []) + ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency", "--timeout", "10s"]
    if script is not None:
        argv += ["-s", str(script)]
    out = subprocess.run(argv + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    tr = re.search(r"Transfer/sec:\s+([\d.]+)(B|KB|MB|GB)", out)
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock_err = re.search(r"Socket errors: (.*)", out)
    mbs = float(tr.group(1)) * _BYTES[tr.group(2)] / (1 << 20) if tr else 0.0
    res = {"rps": rps, "p50_ms": p50, "p99_ms": p99, "mb_s": mbs}
    if errors or sock_err:
        res["errors"] = 1.0
        print(f"  ! {url}: {errors.group(0) if errors else ''} {sock_err.group(0) if sock_err else ''}")
    return res


# -- paced latency ------------------------------------------------------------------------------
async def paced(port: int, rate: int, duration: float, conns: int = 20) -> dict[str, float]:
    """Open-loop-ish client: `conns` keep-alive connections, each sends on a fixed schedule."""
    req = b"GET /small.json HTTP/1.1\r\nHost: bench\r\n\r\n"
    latencies: list[float] = []
    interval = conns / rate
    stop_at = time.perf_counter() + duration

    async def one(offset: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        nxt = time.perf_counter() + offset
        while nxt < stop_at:
            delay = nxt - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - t0) * 1000)
            nxt += interval
        writer.close()

    await asyncio.gather(*(one(i * interval / conns) for i in range(conns)))
    latencies.sort()
    return {
        "rps": len(latencies) / duration,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
    }


# -- idle connections ---------------------------------------------------------------------------
def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def hold_idle(port: int, n: int) -> list[asyncio.StreamWriter]:
    writers: list[asyncio.StreamWriter] = []
    req = b"GET /small.json HTTP/1.1\r\nHost: bench\r\n\r\n"
    sem = asyncio.Semaphore(200)

    async def one() -> None:
        async with sem:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            writers.append(writer)

    await asyncio.gather(*(one() for _ in range(n)))
    return writers


def fmt(res: dict[str, float]) -> str:
    return f"{res['rps']:>10.0f} req/s  p50 {res['p50_ms']:7.3f} ms  p99 {res['p99_ms']:7.3f} ms  {res.get('mb_s', 0):8.1f} MB/s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--only", default="json,post64k,sse,paced,idle")
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--json", action="store_true", help="print machine-readable results at the end")
    args = ap.parse_args()
    only = set(args.only.split(","))
    for tool in ("wrk", "nginx"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            print(f"{tool} not found: run scripts/install-system-deps --test", file=sys.stderr)
            return 2
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.idle * 2 + 1000, soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="gw-bench-") as tmp, ExitStack() as stack:
        os.chmod(tmp, 0o755)
        st = Stack(Path(tmp))
        st.start()
        stack.callback(st.stop)
        targets = {"direct": st.up, "nginx": st.nginx, "graphwarden": st.gw}
        # warm-up: let every process fault in its pages and open upstream connections
        for port in targets.values():
            wrk(f"http://127.0.0.1:{port}/small.json", connections=10, duration=1)
        scen = [
            ("json", "/small.json", 50, None),
            ("post64k", "/upload", 16, Path(tmp) / "post.lua"),
            ("sse", "/stream.sse", 4, None),
        ]
        for rnd in range(args.rounds):
            for name, path, conns, script in scen:
                if name not in only:
                    continue
                print(f"[{name}] round {rnd + 1}: wrk -t1 -c{conns} -d{args.duration}s")
                for tname, port in targets.items():
                    r = wrk(f"http://127.0.0.1:{port}{path}", connections=conns, duration=args.duration, script=script)
                    results.setdefault(name, {}).setdefault(tname, []).append(r)
                    print(f"  {tname:<12}{fmt(r)}")
            if "paced" in only:
                print(f"[paced] round {rnd + 1}: 1000 req/s over 20 keep-alive connections, {args.duration}s")
                for tname, port in targets.items():
                    r = asyncio.run(paced(port, 1000, args.duration))
                    results.setdefault("paced", {}).setdefault(tname, []).append(r)
                    print(f"  {tname:<12}{fmt(r)}")

        if "idle" in only:
            base = rss_mib(st.gw_pid)

            async def idle() -> float:
                writers = await hold_idle(st.gw, args.idle)
                await asyncio.sleep(1.0)
                rss = rss_mib(st.gw_pid)
                # prove they are still alive: one more request on the last connection
                for w in writers:
                    w.close()
                return rss

            t0 = time.perf_counter()
            rss = asyncio.run(idle())
            print(f"[idle] {args.idle} idle keep-alive connections: graphwarden RSS {rss:.1f} MiB "
                  f"(was {base:.1f} MiB before; {time.perf_counter() - t0:.1f}s to open)")
            results["idle"] = {"graphwarden": [{"connections": float(args.idle), "rss_mib": rss, "base_rss_mib": base}]}

    def med(name: str, target: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name][target])

    print("\nsummary (medians over rounds; targets from issue 2)")
    if "json" in results:
        ratio = med("json", "graphwarden", "rps") / med("json", "nginx", "rps")
        print(f"  small JSON   graphwarden/nginx req/s = {ratio:.2f}   (target >= 0.25)")
    if "post64k" in results:
        ratio = med("post64k", "graphwarden", "rps") / med("post64k", "nginx", "rps")
        print(f"  POST 64 KiB  graphwarden/nginx req/s = {ratio:.2f}")
    if "sse" in results:
        ratio = med("sse", "graphwarden", "mb_s") / med("sse", "nginx", "mb_s")
        print(f"  SSE          graphwarden/nginx MB/s  = {ratio:.2f}   (target >= 0.50)")
    if "paced" in results:
        added = med("paced", "graphwarden", "p99_ms") - med("paced", "direct", "p99_ms")
        added_ng = med("paced", "nginx", "p99_ms") - med("paced", "direct", "p99_ms")
        print(f"  paced 1k/s   added p99 over direct: graphwarden {added:.3f} ms, nginx {added_ng:.3f} ms   (target <= 1 ms)")
    if "idle" in results:
        r = results["idle"]["graphwarden"][0]
        print(f"  idle         {int(r['connections'])} keep-alive connections in {r['rss_mib']:.0f} MiB RSS   (target < 1024 MiB)")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
