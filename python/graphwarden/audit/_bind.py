"""Typed view of the audit part of `graphwarden._native` (kept here, not in a shared stub file)."""

from __future__ import annotations

from typing import Protocol, cast

from graphwarden import _native as _untyped_native


class NativeWriter(Protocol):
    chain: str
    public_key: str
    recovered: str | None
    durability: str

    def append(self, kind: str, body: bytes, /) -> int: ...
    def durable_count(self) -> int: ...
    def appended_count(self) -> int: ...
    def error(self) -> str | None: ...
    def warning(self) -> str | None: ...
    def counters(self) -> tuple[int, int]: ...
    def event_fd(self) -> int: ...
    def want(self, seq: int) -> None: ...
    def wait_durable(self, seq: int, timeout_s: float | None = None) -> bool: ...
    def prune(self, older_than_s: float) -> int: ...
    def close(self) -> None: ...


class NativeWriterFactory(Protocol):
    def __call__(
        self,
        dir: str,
        chain: str,
        key_file: str,
        durability: str = ...,
        batch_window_s: float = ...,
        checkpoint_every: int = ...,
        checkpoint_interval_s: float = ...,
        idle_s: float = ...,
        segment_max_bytes: int = ...,
        anchor_dir: str | None = ...,
        retention_s: float | None = ...,
    ) -> NativeWriter: ...


class _Native(Protocol):
    AuditWriter: NativeWriterFactory
    AuditError: type[Exception]
    AuditUnavailable: type[Exception]

    def audit_verify(self, path: str, anchor: str | None = None, key: str | None = None) -> str: ...
    def audit_read_records(
        self, dir: str, chain: str | None = None, from_seq: int = 0
    ) -> list[tuple[str, int, int, str, bytes]]: ...
    def audit_write_bundle(
        self, dir: str, out: str, selected: dict[str, list[int]], header_json: bytes
    ) -> int: ...
    def audit_public_key(self, key_file: str) -> str: ...
    def audit_bench_append(self, dir: str, key_file: str, n: int, body_len: int) -> float: ...


native = cast(_Native, _untyped_native)
NativeAuditError: type[Exception] = native.AuditError
NativeAuditUnavailable: type[Exception] = native.AuditUnavailable
