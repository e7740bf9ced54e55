"""Prometheus text-format metrics, kept as plain counters (no client library on the hot path).

Per worker process: with `--workers N` each worker answers /metrics for itself and labels its
series with `worker`, so a scraper sums them.
"""

from __future__ import annotations

import bisect
import os
from collections import defaultdict

#: Latency buckets in seconds (Prometheus' defaults extended downwards for a proxy).
LATENCY_BUCKETS_S = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
)


class Metrics:
    def __init__(self, worker: int = 0) -> None:
        self.worker = str(worker)
        self.requests: defaultdict[tuple[str, int], int] = defaultdict(int)
        # route class -> bucket counts (+Inf last), sum, count
        self._hist_counts: dict[str, list[int]] = {}
        self._hist_sum: defaultdict[str, float] = defaultdict(float)
        self.open_connections = 0
        self.connections_total = 0
        self.connections_rejected = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.upstream_errors: defaultdict[str, int] = defaultdict(int)
        self.protocol_errors = 0
        self.in_flight = 0

    def observe(self, route: str, status: int, duration_s: float, bytes_in: int, bytes_out: int) -> None:
        self.requests[(route, status)] += 1
        counts = self._hist_counts.get(route)
        if counts is None:
            counts = self._hist_counts[route] = [0] * (len(LATENCY_BUCKETS_S) + 1)
        counts[bisect.bisect_left(LATENCY_BUCKETS_S, duration_s)] += 1
        self._hist_sum[route] += duration_s
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out

    def render(self) -> bytes:
        w = self.worker
        lines = [
            "# HELP graphwarden_requests_total Requests answered, by route class and status.",
            "# TYPE graphwarden_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            lines.append(
                f'graphwarden_requests_total{{worker="{w}",route="{route}",status="{status}"}} {n}'
            )
        lines += [
            "# HELP graphwarden_request_duration_seconds Time from request head to response end.",
            "# TYPE graphwarden_request_duration_seconds histogram",
        ]
        for route, counts in sorted(self._hist_counts.items()):
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS_S, counts):
                cumulative += n
                lines.append(
                    f'graphwarden_request_duration_seconds_bucket{{worker="{w}",route="{route}",le="{bound}"}} {cumulative}'
                )
            cumulative += counts[-1]
            lines.append(
                f'graphwarden_request_duration_seconds_bucket{{worker="{w}",route="{route}",le="+Inf"}} {cumulative}'
            )
            lines.append(
                f'graphwarden_request_duration_seconds_sum{{worker="{w}",route="{route}"}} {self._hist_sum[route]:.6f}'
            )
            lines.append(
                f'graphwarden_request_duration_seconds_count{{worker="{w}",route="{route}"}} {cumulative}'
            )
        gauges = [
            ("open_connections", "gauge", "Client connections open now.", self.open_connections),
            ("in_flight_requests", "gauge", "Requests being handled now.", self.in_flight),
            ("connections_total", "counter", "Client connections accepted.", self.connections_total),
            ("connections_rejected_total", "counter", "Connections refused over max_connections.", self.connections_rejected),
            ("protocol_errors_total", "counter", "Malformed client requests.", self.protocol_errors),
            ("received_bytes_total", "counter", "Request body bytes received from clients.", self.bytes_in),
            ("sent_bytes_total", "counter", "Response body bytes sent to clients.", self.bytes_out),
        ]
        for name, kind, help_text, value in gauges:
            lines += [
                f"# HELP graphwarden_{name} {help_text}",
                f"# TYPE graphwarden_{name} {kind}",
                f'graphwarden_{name}{{worker="{w}"}} {value}',
            ]
        lines += [
            "# HELP graphwarden_upstream_errors_total Upstream failures by kind.",
            "# TYPE graphwarden_upstream_errors_total counter",
        ]
        for kind, n in sorted(self.upstream_errors.items()):
            lines.append(f'graphwarden_upstream_errors_total{{worker="{w}",kind="{kind}"}} {n}')
        lines.append(f'graphwarden_process_id{{worker="{w}"}} {os.getpid()}')
        return ("\n".join(lines) + "\n").encode()


__all__ = ["LATENCY_BUCKETS_S", "Metrics"]
