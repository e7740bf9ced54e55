"""Verification, reading and export on top of the native verifier."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from graphwarden.audit._bind import NativeAuditError, native
from graphwarden.audit._log import AuditError


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Result of `verify`: `exit_code` 0 intact, 1 tampering, 2 incomplete; `data` is the JSON report."""

    exit_code: int
    status: str
    data: dict[str, Any]

    @property
    def findings(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = list(self.data["findings"])
        for c in self.data["chains"]:
            out.extend(c["findings"])
        return out

    def kinds(self) -> set[str]:
        """Kinds of the non-informational findings."""
        return {f["kind"] for f in self.findings if f["severity"] != "info"}


def verify(
    path: str | os.PathLike[str], anchor: str | os.PathLike[str] | None = None, key: str | None = None
) -> VerifyReport:
    """Verify an audit directory or an export bundle (and the anchor, when given).

    `key` pins the chain key: 64 hex digits, a `.pub` file, or a key file."""
    try:
        text = native.audit_verify(os.fspath(path), None if anchor is None else os.fspath(anchor), key)
    except NativeAuditError as exc:
        raise AuditError(str(exc)) from None
    data: dict[str, Any] = orjson.loads(text)
    return VerifyReport(exit_code=int(data["exit_code"]), status=str(data["status"]), data=data)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    chain: str
    seq: int
    time_ns: int
    kind: str
    body: bytes

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


def read_records(dir: str | os.PathLike[str], chain: str | None = None, from_seq: int = 0) -> list[StoredRecord]:
    """Records of the directory (all chains, or one), seq >= from_seq, in chain then seq order."""
    try:
        rows = native.audit_read_records(os.fspath(dir), chain, from_seq)
    except NativeAuditError as exc:
        raise AuditError(str(exc)) from None
    return [StoredRecord(*row) for row in rows]


def export_bundle(
    dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    select: Callable[[StoredRecord], bool],
    filter_description: dict[str, Any],
    records: Iterable[StoredRecord] | None = None,
) -> int:
    """Write a self-contained bundle of the records `select` accepts; returns how many."""
    chosen: dict[str, list[int]] = {}
    for r in records if records is not None else read_records(dir):
        if select(r):
            chosen.setdefault(r.chain, []).append(r.seq)
    header = orjson.dumps({"created_ns": time.time_ns(), "filter": filter_description}, option=orjson.OPT_SORT_KEYS)
    try:
        return native.audit_write_bundle(os.fspath(dir), os.fspath(out), chosen, header)
    except NativeAuditError as exc:
        raise AuditError(str(exc)) from None
