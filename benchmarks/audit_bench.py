"""Audit log benchmark: append cost and sustained group-commit throughput, side by side.

    .venv/bin/python benchmarks/audit_bench.py [--dir DIR] [--records N]

Reports, on the disk holding DIR (default: the system temp dir):
  * fdatasync latency of the disk (one 4 KiB write + fdatasync)
  * append cost per 1 KiB record, in Rust (no Python) and through AuditLog.append (bytes and dict
    bodies); the fdatasync happens on the writer thread and is excluded
  * sustained records/s: strict mode with concurrent asyncio producers each awaiting durability
    (group commit), and batch mode appending flat out until everything is synced
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import uvloop

from graphwarden.audit import AuditLog, verify
from graphwarden.audit._bind import native

BODY_1K = {"request_id": "r" * 16, "thread_id": "t" * 36, "run_id": "u" * 36, "pad": "x" * 880}


def fsync_latency_us(d: Path, n: int = 200) -> float:
    p = d / "fsync-probe"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        buf = b"\0" * 4096
        t = time.perf_counter()
        for _ in range(n):
            os.write(fd, buf)
            os.fdatasync(fd)
        return (time.perf_counter() - t) / n * 1e6
    finally:
        os.close(fd)
        p.unlink()


def python_append_us(d: Path, n: int, body: object) -> float:
    log = AuditLog.open(d / "py", key_file=d / "k.key", chain="py", mode="batch")
    try:
        t = time.perf_counter()
        for _ in range(n):
            log.append("bench.record", body)  # type: ignore[arg-type]
        return (time.perf_counter() - t) / n * 1e6
    finally:
        log.close()
        shutil.rmtree(d / "py")


def strict_sustained(d: Path, producers: int, seconds: float) -> tuple[float, float]:
    log = AuditLog.open(d / "strict", key_file=d / "k.key", chain="s", mode="strict")
    done = 0
    lat: list[float] = []

    async def producer() -> None:
        nonlocal done
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            t = time.perf_counter()
            await log.append_durable("bench.record", BODY_1K)
            lat.append(time.perf_counter() - t)
            done += 1

    async def main() -> float:
        t = time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(producers)))
        return time.perf_counter() - t

    elapsed = uvloop.run(main())
    log.close()
    assert verify(d / "strict").exit_code == 0
    lat.sort()
    p50 = lat[len(lat) // 2] * 1e3 if lat else 0.0
    return done / elapsed, p50


def batch_sustained(d: Path, n: int) -> float:
    log = AuditLog.open(d / "batch", key_file=d / "k.key", chain="b", mode="batch")
    body = BODY_1K
    t = time.perf_counter()
    last = 0
    for _ in range(n):
        last = log.append("bench.record", body)
    log.wait_durable_blocking(last, 60.0)
    elapsed = time.perf_counter() - t
    log.close()
    assert verify(d / "batch").exit_code == 0
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="directory on the disk to measure")
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    d = Path(tempfile.mkdtemp(prefix="audit-bench-", dir=args.dir))
    try:
        print(f"# audit bench  {time.strftime('%Y-%m-%d %H:%M:%S')}  {platform.node()}  {os.cpu_count()} cpus  dir={d}")
        fs = fsync_latency_us(d)
        print(f"disk fdatasync (4 KiB write + fdatasync):    {fs:8.1f} us")
        rust = min(native.audit_bench_append(str(d / f"rust{i}"), str(d / "k.key"), args.records, 1024) for i in range(3)) / 1e3
        print(f"append 1 KiB, Rust only (no fsync):          {rust:8.2f} us   target <= 2 us: {'OK' if rust <= 2 else 'MISSED'}")
        py_bytes = python_append_us(d, args.records, orjson_dumps(BODY_1K))
        print(f"append 1 KiB, AuditLog.append(bytes):        {py_bytes:8.2f} us   ({py_bytes / rust:.1f}x Rust)")
        py_dict = python_append_us(d, args.records, BODY_1K)
        print(f"append 1 KiB, AuditLog.append(dict):         {py_dict:8.2f} us   ({py_dict / rust:.1f}x Rust)")
        b = batch_sustained(d, args.records)
        print(f"batch mode sustained, appended+synced:       {b:10.0f} records/s")
        for producers in (64, 512):
            s, p50 = strict_sustained(d, producers, args.seconds)
            print(
                f"strict mode sustained, {producers:3d} producers awaiting: {s:8.0f} records/s"
                f"   p50 ack {p50:.2f} ms   ({b / s:.1f}x slower than batch)   target >= 50000/s: {'OK' if s >= 50_000 else 'MISSED'}"
            )
    finally:
        shutil.rmtree(d, ignore_errors=True)


def orjson_dumps(body: object) -> bytes:
    import orjson

    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


if __name__ == "__main__":
    main()
