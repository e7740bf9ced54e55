"""The HTML replay in a real headless browser (Debian's chromium), with the network cut off.

Checks what an auditor opening the file gets: the steps, approvers and comments are in the DOM,
hostile values stay text (no element is created from them), and the page fetches nothing: the
browser's own net log must show no request initiated by the page. A screenshot is written to
the test's tmp dir (look at it when changing the layout).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from trail import hostile_run, interrupted_then_approved_resume

from graphwarden.replay import QueryKind, Verification, build_replay
from graphwarden.replay.render import render

CHROMIUM_TIMEOUT_S = 120

def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium is not installed: run `scripts/install-system-deps --test` (installs Debian's chromium)")


def _run_chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",  # tests may run as root in CI containers
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-default-apps",
        "--disable-extensions",
        '--host-resolver-rules=MAP * ~NOTFOUND',
        *extra,
        page.as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def _page_requests(netlog: Path, page: Path) -> set[str]:
    """Network requests the page caused, from chromium's net log.

    Loads initiated by a file:// page carry it in their network isolation key / site for
    cookies; chromium's own service traffic does not. As a second net, any host contacted
    that is named in the page counts too.
    """
    text = page.read_text(encoding="utf-8")
    data = json.loads(netlog.read_text())
    found: set[str] = set()
    for event in data.get("events", []):
        params = event.get("params") or {}
        url = params.get("url")
        host = params.get("host")
        context = str(params.get("network_isolation_key", "")) + str(params.get("site_for_cookies", ""))
        if isinstance(url, str) and not url.startswith("file:") and "file://" in context:
            found.add(url)
        if isinstance(host, str) and host and host in text:
            found.add(host)
    return found


def test_net_log_detector_sees_a_page_fetch(tmp_path: Path) -> None:
    """Control: the detector used below does catch a page that loads an external image."""
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://evil.test/x.png">x</body></html>')
    netlog = tmp_path / "netlog.json"
    _run_chromium(tmp_path, page, f"--log-net-log={netlog}", "--dump-dom")
    assert "http://evil.test/x.png" in _page_requests(netlog, page)


def test_thread_replay_in_headless_chromium(tmp_path: Path) -> None:
    t = interrupted_then_approved_resume()
    page = tmp_path / "replay-T1.html"
    page.write_text(render(build_replay(t.records, t.intact(), QueryKind.THREAD, "T1"), "html"), encoding="utf-8")

    netlog = tmp_path / "netlog.json"
    dom = _run_chromium(tmp_path, page, f"--log-net-log={netlog}", "--dump-dom").stdout
    for needle in ("ingest", "lookup", "review", "refund", "Bob Stone", "Carol Diaz",
                   "amount matches invoice", "apr_1", "chain gw-0 verified through seq 16"):
        assert needle in dom, needle
    # Steps appear in order in the rendered document.
    assert dom.index("ingest") < dom.index("lookup") < dom.index("interrupt at") < dom.index("refund</b>")
    assert _page_requests(netlog, page) == set()

    shot = tmp_path / "replay-T1.png"
    _run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few KiB
    print(f"screenshot: {shot}")


def test_hostile_values_stay_text_in_the_browser(tmp_path: Path) -> None:
    t = hostile_run()
    v = Verification("incomplete", "torn tail at gw-0 seq 5", {"gw-0": 4}, ["gw-0: record 5 is truncated"])
    page = tmp_path / "replay-hostile.html"
    page.write_text(render(build_replay(t.records, v, QueryKind.RUN, "R30"), "html"), encoding="utf-8")
    netlog = tmp_path / "netlog.json"
    dom = _run_chromium(tmp_path, page, f"--log-net-log={netlog}", "--dump-dom").stdout
    # The serialised DOM re-escapes text, so any element built from a value would show up raw.
    assert "<img" not in dom and "<svg" not in dom
    assert dom.count("<script") == 0
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom
    assert "INCOMPLETE trail" in dom
    assert _page_requests(netlog, page) == set()
    shot = tmp_path / "replay-hostile.png"
    _run_chromium(tmp_path, page, f"--screenshot={shot}", "--window-size=1280,1400")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
