"""TLS termination at the gateway, an https upstream, and `serve --workers`."""

from __future__ import annotations

import http.client
import json
import re
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import harness
from support.certs import make_cert
from support.fake_upstream import FakeUpstream


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    return make_cert(tmp_path_factory.mktemp("certs"))


def test_tls_termination_and_https_upstream(loop_thread: harness.LoopThread, certs: tuple[Path, Path, Path]) -> None:
    ca, cert, key = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    up = FakeUpstream(tls=server_ctx)
    loop_thread.run(up.start())
    try:
        cfg = harness.make_config(
            f"https://127.0.0.1:{up.port}",
            listen={"tls_cert": str(cert), "tls_key": str(key)},
            upstream={"ca_file": str(ca)},
        )
        gw = harness.start(loop_thread, cfg)
        client_ctx = ssl.create_default_context(cafile=str(ca))
        conn = http.client.HTTPSConnection("127.0.0.1", gw.port, context=client_ctx, timeout=10)
        for _ in range(3):  # keep-alive over TLS both ways
            conn.request("POST", "/echo", body=b'{"x": 1}', headers={"content-type": "application/json"})
            resp = conn.getresponse()
            assert resp.status == 200
            seen = json.loads(resp.read())
            headers = {k.lower(): v for k, v in seen["headers"]}
            assert headers["x-forwarded-proto"] == "https"
            assert seen["body_len"] == 8
        conn.close()
        # a plain-HTTP client on the TLS port gets nothing useful (handshake fails, no bytes forwarded)
        before = len(up.requests)
        raw = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=5)
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            raw.request("GET", "/echo")
            raw.getresponse().read()
        assert len(up.requests) == before
        gw.drain(1)
    finally:
        loop_thread.loop.call_soon_threadsafe(up.close)


def test_upstream_certificate_is_verified(loop_thread: harness.LoopThread, certs: tuple[Path, Path, Path]) -> None:
    ca, cert, key = certs
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    up = FakeUpstream(tls=server_ctx)
    loop_thread.run(up.start())
    try:
        # no ca_file: the system store does not know the test CA -> 502, nothing forwarded
        gw = harness.start(loop_thread, harness.make_config(f"https://127.0.0.1:{up.port}"))
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/echo")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 502 and body["error"] == "upstream_unavailable"
        assert up.requests == []
        gw.drain(1)
    finally:
        loop_thread.loop.call_soon_threadsafe(up.close)


def test_workers_share_the_port(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    cfg = tmp_path / "gw.toml"
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg.write_text(
        f'insecure_passthrough = true\n[listen]\nport = {port}\nworkers = 2\n'
        f'[upstream]\nurl = "http://127.0.0.1:{fake_upstream.port}"\n[logging]\naccess_log = false\n'
    )
    proc = subprocess.Popen([sys.executable, "-m", "graphwarden", "serve", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        workers: set[str] = set()
        while time.monotonic() < deadline and len(workers) < 2:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/echo")
                assert c.getresponse().status == 200
                c.close()
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", "/metrics")
                text = c.getresponse().read().decode()
                c.close()
                workers.update(re.findall(r'worker="(\d+)"', text))
            except (ConnectionError, OSError):
                time.sleep(0.1)
        assert workers == {"0", "1"}, f"only saw workers {workers}"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
