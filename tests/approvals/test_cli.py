"""`graphwarden approvals` against the store (the gateway path is covered end to end)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import orjson

from approval_helpers import Hook, new_request
from graphwarden.approvals import ApprovalStore, State
from graphwarden.cli import main


def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_store_commands_through_a_config_file(tmp_path: Path) -> None:
    hook = Hook()
    state = tmp_path / "state"
    config = tmp_path / "gw.toml"
    config.write_text(f'[state]\ndir = "{state}"\n[approvals]\nwebhook_urls = ["{hook.url}"]\n')
    store = ApprovalStore(state / "approvals.sqlite3")
    aid = store.lookup_or_create(new_request(approvals_required=1)).approval.id  # type: ignore[union-attr]

    code, out, _ = cli("approvals", "list", "--config", str(config))
    assert code == 0 and aid in out and "pending" in out and "alice" in out
    code, out, _ = cli("approvals", "list", "--config", str(config), "--as", "eve", "--group", "sales", "--json")
    assert code == 0 and orjson.loads(out) == {"approvals": []}
    code, out, _ = cli("approvals", "show", aid, "--config", str(config))
    assert code == 0 and orjson.loads(out)["events"][0]["event"] == "request"
    code, _, err = cli("approvals", "approve", aid, "--config", str(config))
    assert code == 2 and "--as SUBJECT" in err
    code, _, err = cli("approvals", "approve", aid, "--config", str(config), "--as", "eve", "--group", "sales")
    assert code == 1 and "not_an_approver" in err
    code, out, _ = cli("approvals", "deny", aid, "--config", str(config), "--as", "bob", "--group", "sre",
                       "--comment", "no")
    assert code == 0 and "denied" in out
    assert store.state_of(aid) is State.DENIED
    hook.close()
    assert [(b["type"], b["approval"]["approval_id"]) for _, b in hook.received] == [("approval.denied", aid)]
    code, _, err = cli("approvals", "show", "apr_missing", "--config", str(config))
    assert code == 1 and "approval_not_found" in err


def test_bad_config_and_unreachable_gateway(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[approvals]\nhold_seconds = -1\n")
    code, _, err = cli("approvals", "list", "--config", str(bad))
    assert code == 2 and "approvals.hold_seconds" in err
    code, _, err = cli("approvals", "list", "--gateway", "http://127.0.0.1:9", "--token", "bob:sre", "--timeout", "2")
    assert code == 2 and "cannot reach" in err
