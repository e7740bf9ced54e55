"""Per-principal limits: a token bucket of requests per second and a count of open streams."""

from __future__ import annotations

import math
import time


class RateLimiter:
    def __init__(self, requests_per_s: float, burst: int, max_streams: int) -> None:
        self.rate = requests_per_s
        self.burst = float(burst)
        self.max_streams = max_streams
        self._buckets: dict[str, tuple[float, float]] = {}
        self.streams: dict[str, int] = {}

    def take(self, subject: str, now: float | None = None) -> float:
        """0.0 when a request may pass, else the seconds to wait before retrying."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(subject, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[subject] = (tokens - 1.0, now)
            return 0.0
        self._buckets[subject] = (tokens, now)
        if len(self._buckets) > 100_000:
            self._buckets.clear()
        return (1.0 - tokens) / self.rate

    def open_stream(self, subject: str) -> bool:
        if self.max_streams <= 0:
            return True
        n = self.streams.get(subject, 0)
        if n >= self.max_streams:
            return False
        self.streams[subject] = n + 1
        return True

    def close_stream(self, subject: str) -> None:
        if self.max_streams <= 0:
            return
        n = self.streams.get(subject, 0) - 1
        if n <= 0:
            self.streams.pop(subject, None)
        else:
            self.streams[subject] = n


def retry_after(seconds: float) -> bytes:
    return str(max(1, math.ceil(seconds))).encode()


__all__ = ["RateLimiter", "retry_after"]
