"""Subprocess for the kill -9 test: strict-mode appends from concurrent asyncio tasks; a line is
printed only after its record is durable (the acknowledgement)."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from graphwarden.audit import AuditLog


async def main(directory: str, key: str, round_no: int) -> None:
    log = AuditLog.open(
        directory, key_file=key, chain="w0", mode="strict", checkpoint_every=50, segment_max_bytes=8192
    )
    log.wait_durable_blocking(log.stats()["appended"] - 1, 10.0)  # genesis / recovery record
    print(f"open {log.recovered is not None}", flush=True)

    async def worker(k: int) -> None:
        i = 0
        while True:
            seq = log.append("test.event", {"round": round_no, "worker": k, "i": i, "pad": "p" * 200})
            await log.wait_durable(seq)
            sys.stdout.write(f"{seq} {round_no} {k} {i}\n")
            sys.stdout.flush()
            i += 1

    await asyncio.gather(*(worker(k) for k in range(8)))


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
