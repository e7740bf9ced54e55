"""Subprocess for the write-failure test: RLIMIT_FSIZE makes writes fail with EFBIG (as a full
disk would); then the limit is lifted and the log must recover by itself."""

from __future__ import annotations

import json
import resource
import signal
import sys
import time

from graphwarden.audit import AuditLog, AuditUnavailable

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
directory, key = sys.argv[1], sys.argv[2]
log = AuditLog.open(directory, key_file=key, chain="w0", mode="strict", segment_max_bytes=1 << 30)
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
acked: list[int] = []
failed_append = None
failed_wait = None
for i in range(10_000):
    try:
        seq = log.append("test.event", {"i": i, "pad": "q" * 1000})
    except AuditUnavailable as exc:
        failed_append = str(exc)
        break
    try:
        log.wait_durable_blocking(seq, 5.0)
        acked.append(seq)
    except AuditUnavailable as exc:
        failed_wait = str(exc)
healthy_during = log.healthy()
error_during = log.last_error()
resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
deadline = time.monotonic() + 5
while not log.healthy() and time.monotonic() < deadline:
    time.sleep(0.05)
recovered = log.healthy()
after = log.append("test.event", {"after": True})
log.wait_durable_blocking(after, 5.0)
log.close()
print(json.dumps({
    "failed_append": failed_append, "failed_wait": failed_wait, "healthy_during": healthy_during,
    "error_during": error_during, "recovered": recovered, "acked": acked, "after": after,
}))
