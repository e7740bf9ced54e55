#!/usr/bin/env python3
"""What each guardrail costs on the proxy benchmark's loads, side by side in one run.

Configurations of the same graphwarden build, one worker each, in front of the same upstream
(nginx, 1 worker, static answers), under the same wrk load:

  passthrough     insecure_passthrough (no identity, policy, masking or audit)
  policy          OIDC bearer token (RS256, cached JWKS) + route classification + policy
  audit-batch     policy + audit trail in batch durability (records masked with the catalogue;
                  client traffic not masked)
  audit-strict    policy + audit trail in strict durability (response released only once its
                  records are on disk)
  all             policy + masking of requests, JSON responses and SSE + batch audit

Loads: small JSON GETs (`GET /info`, 50 connections) and an SSE stream
(`GET /threads/T/runs/R/stream`, 32 MiB of events, 4 connections; MB/s).

Targets (issues 4, 5 and 7): policy >= 85% of passthrough req/s; audit batch costs <= 10% and
strict <= 25% of the req/s without audit; all guardrails >= 60% of passthrough on small JSON and
>= 50% on SSE payload throughput.

All configurations run side by side for the whole benchmark; the loads alternate between them
in short slices (rotating who goes first), and each ratio is the median of the per-round
ratios. On a shared, noisy machine, slow drifts in available CPU then hit both sides of a
ratio alike (separate long runs per configuration gave ratios that moved by 0.3 from one
invocation to the next).

`--pin` (machines with 2+ CPUs): every gateway runs on the last CPU, nginx and wrk on the
others, so that the load generator and the upstream do not compete with the gateway for its
core, and a gateway's own threads (the audit writer's fdatasync calls in strict mode) compete
with its event loop as they do when every core runs a worker. Without it (the default) the
scheduler places everything, and the audit writer may use a core the event loop leaves idle.

Besides throughput, the CPU time each gateway process (all its threads, the audit writer
included) spent per request is reported, with its ratios: it moves much less with machine noise
than req/s does, and for a saturated single worker it predicts the throughput ratio.

Usage: python3 benchmarks/guardrails_bench.py [--duration 2] [--rounds 8] [--pin] [--only passthrough,all]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proxy_bench import SMALL_JSON, free_port, sse_payload, wait_port, wrk  # noqa: E402

ISSUER = "https://idp.bench.invalid"
SUBJECT = "bench-user"
THREAD = "0f2a6c3e-0000-4000-8000-000000000001"
RUN = "0f2a6c3e-0000-4000-8000-000000000002"

NGINX = """
user root;
worker_processes 1;
daemon off;
pid {dir}/upstream.pid;
error_log {dir}/upstream-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {{
    listen 127.0.0.1:{port};
    default_type application/json;
    location = /ok {{ return 200 '{{"ok":true}}'; }}
    location = /info {{ alias {dir}/www/info.json; }}
    location = /jwks.json {{ alias {dir}/www/jwks.json; }}
    location = /threads/{thread} {{ alias {dir}/www/thread.json; }}
    location = /threads/{thread}/runs/{run}/stream {{ default_type text/event-stream; alias {dir}/www/stream.sse; }}
  }}
}}
"""

POLICY = """
version = 1
[[rules]]
id = "users-own-work"
groups = ["user"]
resources = ["assistants", "threads", "runs", "meta"]
effect = "allow"
"""


def _b64(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_identity(d: Path) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256", "n": _b64(pub.n), "e": _b64(pub.e)}]}
    (d / "www" / "jwks.json").write_text(json.dumps(jwks))
    now = int(time.time())
    token = jwt.encode(
        {"iss": ISSUER, "aud": "graphwarden", "sub": SUBJECT, "groups": ["user"], "iat": now, "nbf": now,
         "exp": now + 3600, "name": "Bench User"},
        key, algorithm="RS256", headers={"kid": "bench"},
    )
    return token


def gateway_toml(port: int, up: int, d: Path, name: str) -> str:
    base = f"""
[listen]
port = {port}
[upstream]
url = "http://127.0.0.1:{up}"
[limits]
keepalive_timeout_s = 300.0
[logging]
access_log = false
level = "warning"
[state]
dir = "{d / ('state-' + name)}"
"""
    if name == "passthrough":
        return "insecure_passthrough = true\n" + base
    policy_file = d / "policy.toml"
    out = base + f"""
[identity]
[[identity.oidc]]
issuer = "{ISSUER}"
audience = ["graphwarden"]
discovery = false
jwks_uri = "http://127.0.0.1:{up}/jwks.json"
[policy]
file = "{policy_file}"
[policy.rate_limits]
requests_per_s = 1000000
burst = 1000000
max_streams = 100000
"""
    if name == "policy":
        out += "[audit]\nenabled = false\n"
    elif name in ("audit-batch", "audit-strict"):
        mode = name.split("-")[1]
        out += f'[audit]\ndurability = "{mode}"\n[masking]\nrequests = false\nresponses = false\n'
    elif name == "all":
        out += '[audit]\ndurability = "batch"\n[masking]\nrequests = true\nresponses = true\n'
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the serve parent forks workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for t in os.listdir(f"/proc/{p}/task"):
                kids = Path(f"/proc/{p}/task/{t}/children").read_text().split()
                todo.extend(int(k) for k in kids)
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=2.0, help="seconds per load slice")
    ap.add_argument("--only", default="passthrough,policy,audit-batch,audit-strict,all")
    ap.add_argument("--rounds", type=int, default=8, help="paired rounds; medians of per-round ratios are reported")
    ap.add_argument("--pin", action="store_true", help="pin the gateways and the load to separate CPUs")
    ap.add_argument("--profile", help="py-spy record this configuration's gateway during its first slice of "
                                      "--profile-load (raw output to /tmp/gw-NAME.spy; with GW_SPY_NATIVE=1 in "
                                      "the environment, native frames too)")
    ap.add_argument("--profile-load", choices=("json", "sse"), default="json")
    args = ap.parse_args()
    names = args.only.split(",")
    ncpu = len(os.sched_getaffinity(0))
    pin = args.pin and ncpu >= 2
    cpus = sorted(os.sched_getaffinity(0))
    gw_cpus = {cpus[-1]} if pin else set(cpus)
    load_cpus = ",".join(str(c) for c in cpus[:-1]) if pin else None
    samples: dict[str, dict[str, list[dict[str, float]]]] = {n: {"json": [], "sse": []} for n in names}
    with tempfile.TemporaryDirectory(prefix="gw-guard-bench-") as tmp:
        d = Path(tmp)
        os.chmod(d, 0o755)
        (d / "www").mkdir()
        (d / "www" / "info.json").write_bytes(SMALL_JSON)
        (d / "www" / "thread.json").write_text(json.dumps(
            {"thread_id": THREAD, "metadata": {"graphwarden_owner": SUBJECT}, "status": "idle"}))
        (d / "www" / "stream.sse").write_bytes(sse_payload(32 << 20))
        (d / "policy.toml").write_text(POLICY)
        token = make_identity(d)
        up = free_port()
        (d / "upstream.conf").write_text(NGINX.format(dir=d, port=up, thread=THREAD, run=RUN))
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        upstream = subprocess.Popen((["taskset", "-c", load_cpus] if load_cpus else []) + [nginx, "-c", str(d / "upstream.conf")])
        gateways: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            wait_port(up)
            hdr = d / "auth.lua"
            hdr.write_text(f'wrk.headers["Authorization"] = "Bearer {token}"\n')
            # Every configuration runs side by side for the whole benchmark (idle ones cost
            # nothing); the loads then alternate between them in short slices, so that each
            # round compares configurations under the same machine conditions.
            for name in names:
                port = free_port()
                cfg = d / f"gw-{name}.toml"
                cfg.write_text(gateway_toml(port, up, d, name))
                gw = subprocess.Popen([sys.executable, "-m", "graphwarden", "serve", "--config", str(cfg)],
                                      stdout=subprocess.DEVNULL, stderr=open(d / f"{name}.log", "wb"),
                                      preexec_fn=lambda: os.sched_setaffinity(0, gw_cpus))
                gateways[name] = (gw, port)
            for name, (gw, port) in gateways.items():
                try:
                    wait_port(port, 60)
                except RuntimeError:
                    print(f"{name}: the gateway did not start:\n" + (d / f"{name}.log").read_text()[-3000:])
                    raise
                script = None if name == "passthrough" else hdr
                wrk(f"http://127.0.0.1:{port}/info", connections=10, duration=1, script=script,
                    cpus=load_cpus)  # warm-up

            def run(name: str, load: str, rnd: int) -> dict[str, float]:
                gw, port = gateways[name]
                script = None if name == "passthrough" else hdr
                base = f"http://127.0.0.1:{port}"
                spy = None
                if load == args.profile_load and rnd == 0 and args.profile == name and shutil.which("py-spy"):
                    spy = subprocess.Popen(["py-spy", "record", "-p", str(gw.pid), "-d", str(max(1, int(args.duration))),
                                            "-r", "1000", *(["--native"] if os.environ.get("GW_SPY_NATIVE") else []), "-f", "raw", "-o", f"/tmp/gw-{name}.spy"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                cpu0 = tree_cpu_s(gw.pid)
                if load == "json":
                    r = wrk(f"{base}/info", connections=50, duration=args.duration, script=script, cpus=load_cpus)
                else:
                    r = wrk(f"{base}/threads/{THREAD}/runs/{RUN}/stream", connections=4, duration=args.duration,
                            script=script, cpus=load_cpus)
                cpu = tree_cpu_s(gw.pid) - cpu0
                seconds = max(1, round(args.duration))  # wrk runs whole seconds
                # CPU µs per request (JSON) or per MiB of events (SSE)
                r["cpu_us"] = cpu * 1e6 / max(r["rps" if load == "json" else "mb_s"] * seconds, 1e-9)
                if spy is not None:
                    spy.wait(30)
                if "errors" in r:
                    print(f"  ! {name}: non-2xx answers, see {d / (name + '.log')}:")
                    print((d / f"{name}.log").read_text()[-2000:])
                return r

            for rnd in range(args.rounds):
                order = names[rnd % len(names):] + names[:rnd % len(names)]  # rotate who goes first
                for load in ("json", "sse"):
                    for name in order:
                        samples[name][load].append(run(name, load, rnd))
                print(f"[round {rnd + 1}] " + "  ".join(
                    f"{n} {samples[n]['json'][-1]['rps']:.0f} req/s {samples[n]['sse'][-1]['mb_s']:.0f} MB/s" for n in names),
                    flush=True)
        finally:
            for gw, _ in gateways.values():
                gw.send_signal(signal.SIGTERM)
            for gw, _ in gateways.values():
                try:
                    gw.wait(30)
                except subprocess.TimeoutExpired:
                    gw.kill()
            upstream.send_signal(signal.SIGTERM)
            upstream.wait(10)

    print(f"\nmedians over {args.rounds} rounds of {args.duration:g} s slices:")
    for name in names:
        j, e = samples[name]["json"], samples[name]["sse"]
        print(f"  {name:<14} json {statistics.median(x['rps'] for x in j):8.0f} req/s "
              f"p99 {statistics.median(x['p99_ms'] for x in j):7.2f} ms "
              f"cpu {statistics.median(x['cpu_us'] for x in j):6.1f} us/req | "
              f"sse {statistics.median(x['mb_s'] for x in e):8.1f} MB/s cpu {statistics.median(x['cpu_us'] for x in e):7.0f} us/MiB")

    def ratio(a: str, b: str, load: str, key: str) -> str:
        if a not in samples or b not in samples:
            return "n/a"
        per_round = sorted(x[key] / y[key] for x, y in zip(samples[a][load], samples[b][load]))
        # the same ratio predicted from CPU time per unit of work (inverse: cheaper is faster)
        by_cpu = statistics.median(y["cpu_us"] / x["cpu_us"] for x, y in zip(samples[a][load], samples[b][load]))
        return (f"{statistics.median(per_round):.2f}  by CPU time {by_cpu:.2f}  "
                f"(rounds: {', '.join(f'{r:.2f}' for r in per_round)})")

    print(f"\nsummary (median of the per-round ratios; req/s, or MB/s for SSE; gateways pinned: {pin})")
    print(f"  policy / passthrough, small JSON   (target >= 0.85) = {ratio('policy', 'passthrough', 'json', 'rps')}")
    print(f"  audit-batch / policy, small JSON   (target >= 0.90) = {ratio('audit-batch', 'policy', 'json', 'rps')}")
    print(f"  audit-strict / policy, small JSON  (target >= 0.75) = {ratio('audit-strict', 'policy', 'json', 'rps')}")
    print(f"  all / passthrough, small JSON      (target >= 0.60) = {ratio('all', 'passthrough', 'json', 'rps')}")
    print(f"  all / passthrough, SSE MB/s        (target >= 0.50) = {ratio('all', 'passthrough', 'sse', 'mb_s')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
