"""Identity + policy cost, side by side in one run.

1. Micro (in-process): µs per OIDC token verification with the key cached (full RS256 check, and
   the verified-token cache hit), per API-key check, per policy decision, and per whole
   `AccessGuard.authorize` for GET /threads/{id} (owner already cached).
2. Gateway throughput with wrk (Debian `wrk`) on small JSON GETs (GET /threads/t1 answered by a
   tiny keep-alive upstream): passthrough vs API key + policy vs OIDC bearer + policy. One gateway
   worker each, same upstream, ratios printed.

    .venv/bin/python benchmarks/policy_bench.py [--seconds 6] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

THREAD_JSON = b'{"thread_id":"t1","metadata":{"graphwarden_owner":"bench"},"status":"idle","values":{"n":1}}'


# -- a tiny upstream (own process) -----------------------------------------------------------
def run_upstream(port: int, jwks_path: str) -> None:
    import uvloop

    jwks = Path(jwks_path).read_bytes()

    class Proto(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t: Any = transport
            self.buf = b""

        def data_received(self, data: bytes) -> None:
            self.buf += data
            while b"\r\n\r\n" in self.buf:
                head, _, self.buf = self.buf.partition(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                body = jwks if target == b"/jwks" else THREAD_JSON
                self.t.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Proto, "127.0.0.1", port, backlog=1024)
        await server.serve_forever()

    uvloop.run(main())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, headers: dict[str, str], timeout_s: float = 20) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# -- micro ------------------------------------------------------------------------------------
def micro(state: Path, issuer: str, private_pem: bytes, jwks_uri: str) -> dict[str, float]:
    import jwt
    import uvloop

    from graphwarden.config import convert_config
    from graphwarden.guard import Principal, RequestInfo
    from graphwarden.identity.keys import KeyStore
    from graphwarden.policy.engine import default_policy_text, parse_policy, read_facts
    from graphwarden.policy.guard import build_guard
    from graphwarden.policy.routes import RouteTable

    config = convert_config({
        "state": {"dir": str(state)}, "logging": {"level": "warning", "access_log": False},
        "identity": {"oidc": [{"issuer": issuer, "audience": ["bench"], "discovery": False, "jwks_uri": jwks_uri}]},
        "policy": {"rate_limits": {"requests_per_s": 0, "max_streams": 0}},
    })
    store = KeyStore.for_state_dir(state)
    key = store.create("bench", ("user",))[0]
    guard = build_guard(config, key_store=store)
    now = int(time.time())
    token = jwt.encode({"iss": issuer, "aud": "bench", "sub": "bench", "iat": now, "exp": now + 3600, "groups": ["user"]},
                       private_pem, algorithm="RS256", headers={"kid": "k1"})
    verifier = guard.auth.oidc.issuers[issuer]  # type: ignore[union-attr]
    out: dict[str, float] = {}

    async def run() -> None:
        await verifier.refresh(force=False)
        header = {"alg": "RS256", "kid": "k1"}
        n = 2000
        t0 = time.perf_counter()
        for _ in range(n):
            verifier._tokens.clear()
            await verifier.verify(token, header)
        out["oidc_verify_rs256_us"] = (time.perf_counter() - t0) / n * 1e6
        t0 = time.perf_counter()
        for _ in range(n * 10):
            await guard.auth.oidc.verify(token)  # type: ignore[union-attr]
        out["oidc_verify_cached_token_us"] = (time.perf_counter() - t0) / (n * 10) * 1e6
        t0 = time.perf_counter()
        for _ in range(n * 10):
            guard.auth.keys.verify(key)  # type: ignore[union-attr]
        out["api_key_verify_us"] = (time.perf_counter() - t0) / (n * 10) * 1e6
        policy = parse_policy(default_policy_text(), "default")
        op = RouteTable().classify("GET", "/threads/t1")
        p = Principal("bench", ("user",))
        facts = read_facts(op, None)
        t0 = time.perf_counter()
        for _ in range(n * 50):
            policy.decide(p, op, facts)
        out["policy_decide_us"] = (time.perf_counter() - t0) / (n * 50) * 1e6
        table = RouteTable()
        t0 = time.perf_counter()
        for _ in range(n * 50):
            table.classify("GET", "/threads/0b7a1c2e-5f14-4d6c-9a7f-1d2e3f4a5b6c/runs/9f8e7d6c/stream")
        out["route_classify_us"] = (time.perf_counter() - t0) / (n * 50) * 1e6
        guard.owners.remember("threads", "t1", "bench")
        guard.owners.cache_s = 1e9
        info = RequestInfo("GET", "/threads/t1", ((b"authorization", b"Bearer " + token.encode()),), "127.0.0.1", "r1")
        op = guard.classify(info)
        t0 = time.perf_counter()
        for _ in range(n * 5):
            d = await guard.authorize(info, op, None)
        out["guard_authorize_oidc_us"] = (time.perf_counter() - t0) / (n * 5) * 1e6
        assert type(d).__name__ == "Admit", d

    uvloop.run(run())
    store.close()
    return out


# -- throughput -------------------------------------------------------------------------------
def wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", *[a for k, v in headers.items() for a in ("-H", f"{k}: {v}")], url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"wrk saw {non2xx.group(1)} error responses:\n{out}")
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert m, out
    return float(m.group(1))


def gateway(config_text: str, tmp: Path, name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = tmp / f"{name}.toml"
    cfg.write_text(config_text.replace("PORT", str(port)))
    exe = shutil.which("graphwarden", path=str(Path(sys.executable).parent)) or "graphwarden"
    proc = subprocess.Popen([exe, "serve", "--config", str(cfg)], stdout=subprocess.DEVNULL, stderr=(tmp / f"{name}.log").open("wb"))
    return proc, port


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--upstream", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--jwks", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.upstream:
        run_upstream(args.upstream, args.jwks)
        return 0

    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from graphwarden.identity.keys import KeyStore

    tmp = Path(tempfile.mkdtemp(prefix="gw-policy-bench-"))
    priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = priv.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(priv.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    (tmp / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    up_port = free_port()
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port), "--jwks", str(tmp / "jwks.json")])
    issuer = "https://bench.invalid"
    procs: list[subprocess.Popen[bytes]] = [upstream]
    try:
        wait_http(f"http://127.0.0.1:{up_port}/jwks", {})
        print("micro benchmarks (in-process, µs per call):")
        for name, us in micro(tmp / "micro", issuer, pem, f"http://127.0.0.1:{up_port}/jwks").items():
            print(f"  {name:<32} {us:8.2f}")

        state = tmp / "state"
        store = KeyStore.for_state_dir(state)
        key = store.create("bench", ("user",))[0]
        store.close()
        now = int(time.time())
        token = jwt.encode({"iss": issuer, "aud": "bench", "sub": "bench", "iat": now, "exp": now + 3600, "groups": ["user"]},
                           pem, algorithm="RS256", headers={"kid": "k1"})
        common = f"""
[listen]
port = PORT
[upstream]
url = "http://127.0.0.1:{up_port}"
[logging]
level = "warning"
access_log = false
[state]
dir = "{state}"
"""
        secured = common + f"""
[policy.rate_limits]
requests_per_s = 0
max_streams = 0
[[identity.oidc]]
issuer = "{issuer}"
audience = ["bench"]
discovery = false
jwks_uri = "http://127.0.0.1:{up_port}/jwks"
"""
        runs = [
            ("passthrough", "insecure_passthrough = true\n" + common, {}),
            ("api key + policy", secured, {"x-api-key": key}),
            ("oidc + policy", secured, {"authorization": f"Bearer {token}"}),
        ]
        print(f"\ngateway throughput, GET /threads/t1 (small JSON), wrk -t1 -c{args.connections} -d{args.seconds}s, "
              f"1 worker each; {args.rounds} interleaved rounds, median:")
        started = []
        for name, text, headers in runs:
            proc, port = gateway(text, tmp, name.split()[0])
            procs.append(proc)
            url = f"http://127.0.0.1:{port}/threads/t1"
            status = wait_http(url, headers)
            if status != 200:
                raise SystemExit(f"{name}: GET answered {status}")
            wrk(url, headers, 1, args.connections)  # warm-up
            started.append((name, url, headers))
        samples: dict[str, list[float]] = {name: [] for name, _, _ in started}
        for _ in range(args.rounds):
            for name, url, headers in started:
                samples[name].append(wrk(url, headers, args.seconds, args.connections))
        results = {name: statistics.median(v) for name, v in samples.items()}
        for name, value in results.items():
            runs_text = ", ".join(f"{x:.0f}" for x in samples[name])
            print(f"  {name:<18} {value:10.0f} req/s   {value / results['passthrough']:.3f} of passthrough   ({runs_text})")
        worst = min(results["api key + policy"], results["oidc + policy"]) / results["passthrough"]
        print(f"\nidentity + policy cost: {100 * (1 - worst):.1f}% of passthrough throughput (target <= 15%)")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
