"""Audit config block, the builder the integrator calls, retention and several chains."""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

from graphwarden.audit import AuditLog, default_chain_id, open_from_config, verify
from graphwarden.config import GatewayConfig, load_config, parse_config
from graphwarden.errors import ConfigError
from audit_helpers import fill


def test_defaults_load_and_resolve_under_state_dir() -> None:
    cfg = load_config(None)
    assert cfg.audit.enabled and cfg.audit.durability == "batch"
    assert cfg.audit.resolved_dir("./graphwarden-state") == "graphwarden-state/audit"
    assert cfg.audit.resolved_key_file("s").endswith("keys/audit-ed25519.key")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[audit]\ndurability = "always"\n', "audit.durability"),
        ("[audit]\ncheckpoint_every = 0\n", "audit.checkpoint_every"),
        ("[audit]\nsegment_max_bytes = 10\n", "audit.segment_max_bytes"),
        ('[audit]\nchain_prefix = "a/b"\n', "audit.chain_prefix"),
        ("[audit]\nretention_days = -1\n", "audit.retention_days"),
        ("[audit]\nanchor = 1\n", "audit"),
    ],
)
def test_bad_audit_config_names_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert key in str(info.value)


def test_open_from_config_per_worker_chains(tmp_path: Path) -> None:
    cfg = parse_config(
        f'[state]\ndir = "{tmp_path}"\n[audit]\ndurability = "strict"\nanchor_dir = "{tmp_path / "anchor"}"\nchain_prefix = "gw"\n'
    )
    logs = [open_from_config(cfg, w) for w in range(3)]
    assert all(log is not None for log in logs)
    for w, log in enumerate(logs):
        assert log is not None and log.chain == f"gw-w{w}" and log.durability == "strict"
        fill(log, 20)
        log.close()
    assert (tmp_path / "keys" / "audit-ed25519.key").exists()
    rep = verify(tmp_path / "audit", tmp_path / "anchor")
    assert rep.exit_code == 0 and [c["chain"] for c in rep.data["chains"]] == ["gw-w0", "gw-w1", "gw-w2"]
    off = msgspec.structs.replace(cfg, audit=msgspec.structs.replace(cfg.audit, enabled=False))
    assert open_from_config(off) is None


def test_default_chain_id_is_valid() -> None:
    assert default_chain_id(3, "host.example/x") == "host.example-x-w3"
    assert default_chain_id(0).endswith("-w0")


def test_retention_prunes_old_segments_through_a_signed_checkpoint(tmp_path: Path) -> None:
    kw: dict[str, object] = dict(key_file=tmp_path / "k.key", chain="w0", mode="strict", segment_max_bytes=4096)
    log = AuditLog.open(tmp_path / "audit", **kw)  # type: ignore[arg-type]
    fill(log, 150)
    log.close()
    segs = sorted((tmp_path / "audit" / "w0").glob("*.seg"))
    assert len(segs) >= 4
    old = time.time() - 10 * 86_400
    for s in segs[:-1]:
        os.utime(s, (old, old))
    log = AuditLog.open(tmp_path / "audit", retention_s=86_400.0, **kw)  # type: ignore[arg-type]
    deadline = time.monotonic() + 5
    while len(list((tmp_path / "audit" / "w0").glob("*.seg"))) >= len(segs) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    left = sorted((tmp_path / "audit" / "w0").glob("*.seg"))
    assert len(left) == 1 and left[0] == segs[-1]  # every sealed, old segment went
    rep = verify(tmp_path / "audit")
    assert rep.exit_code == 0, rep.findings
    assert rep.data["chains"][0]["pruned_before"] == int(left[0].name[:20])


def test_append_rejects_reserved_kinds_and_bad_bodies(tmp_path: Path) -> None:
    log = AuditLog.open(tmp_path / "audit", key_file=tmp_path / "k.key", chain="w0")
    with pytest.raises(ValueError, match="audit"):
        log.append("audit.genesis", {})
    with pytest.raises(ValueError, match="JSON"):
        log.append("x", {"a": object()})
    log.close()
