"""Serving: the listening socket(s), worker processes and graceful drain.

`--workers N` forks N processes after configuration is validated. Each worker binds its own
listening socket with SO_REUSEPORT, so the kernel spreads connections across workers' accept
queues (no thundering herd, no shared accept lock). The parent holds a bound, non-listening
socket on the same port so that port 0 resolves once and the port stays reserved; it forwards
SIGTERM/SIGINT and restarts a worker that dies unexpectedly.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from graphwarden.config import GatewayConfig
from graphwarden.gateway import Gateway
from graphwarden.guard import Guard
from graphwarden.listener.connection import ClientConnection
from graphwarden.ops import get_logger

log = get_logger("listener")

GuardFactory = Callable[[GatewayConfig], Guard]
GatewayHook = Callable[[Gateway], None]


def make_socket(host: str, port: int, *, reuse_port: bool, listen: bool, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(backlog)
    sock.setblocking(False)
    return sock


def tls_server_context(config: GatewayConfig) -> ssl.SSLContext | None:
    cert, key = config.listen.tls_cert, config.listen.tls_key
    if cert is None or key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


@dataclass
class RunningGateway:
    gateway: Gateway
    server: asyncio.base_events.Server
    port: int

    async def drain(self, deadline_s: float) -> None:
        """Stop accepting, let in-flight requests finish up to `deadline_s`, then close all."""
        gw = self.gateway
        gw.draining = True
        self.server.close()
        gw.close_idle()
        end = time.monotonic() + deadline_s
        while gw.connections and time.monotonic() < end:
            await asyncio.sleep(0.05)
            gw.close_idle()
        for conn in list(gw.connections):
            conn.abort()
        gw.close()
        await asyncio.sleep(0)


async def start_gateway(
    config: GatewayConfig,
    guard: Guard,
    *,
    sock: socket.socket | None = None,
    worker: int = 0,
    hooks: tuple[GatewayHook, ...] = (),
) -> RunningGateway:
    loop = asyncio.get_running_loop()
    gw = Gateway(config, guard, worker=worker)
    for hook in hooks:
        hook(gw)
    tls = tls_server_context(config)
    scheme = "https" if tls else "http"
    if sock is None:
        sock = make_socket(
            config.listen.host, config.listen.port, reuse_port=False, listen=True,
            backlog=config.listen.backlog,
        )
    server = await loop.create_server(
        lambda: ClientConnection(gw, scheme), sock=sock, ssl=tls, backlog=config.listen.backlog
    )
    port = int(sock.getsockname()[1])
    return RunningGateway(gw, server, port)


async def serve_forever(
    config: GatewayConfig,
    guard_factory: GuardFactory,
    *,
    sock: socket.socket | None = None,
    worker: int = 0,
    hooks: tuple[GatewayHook, ...] = (),
) -> int:
    loop = asyncio.get_running_loop()
    running = await start_gateway(config, guard_factory(config), sock=sock, worker=worker, hooks=hooks)
    # Everything built so far lives as long as the worker (modules, configuration, routes,
    # policy, identity and masking state). Frozen, it is no longer scanned by the cyclic
    # collector, whose full collections then walk only what requests allocate (under load a
    # full collection took 17 ms before).
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "listening",
        extra={"fields": {
            "host": config.listen.host, "port": running.port, "worker": worker, "pid": os.getpid(),
            "upstream": config.upstream.url, "tls": config.listen.tls_cert is not None,
        }},
    )
    await stop.wait()
    log.info("draining", extra={"fields": {"worker": worker, "in_flight": len(running.gateway.connections)}})
    await running.drain(config.limits.drain_timeout_s)
    log.info("stopped", extra={"fields": {"worker": worker}})
    return 0


def _run_worker(config: GatewayConfig, guard_factory: GuardFactory, sock: socket.socket, worker: int,
                hooks: tuple[GatewayHook, ...]) -> int:
    import uvloop

    return uvloop.run(serve_forever(config, guard_factory, sock=sock, worker=worker, hooks=hooks))


def run_gateway(config: GatewayConfig, guard_factory: GuardFactory, hooks: tuple[GatewayHook, ...] = ()) -> int:
    """Run in the foreground until SIGTERM/SIGINT. Returns the exit code."""
    listen = config.listen
    if listen.workers == 1:
        sock = make_socket(listen.host, listen.port, reuse_port=False, listen=True, backlog=listen.backlog)
        return _run_worker(config, guard_factory, sock, 0, hooks)

    reserve = make_socket(listen.host, listen.port, reuse_port=True, listen=False, backlog=listen.backlog)
    port = int(reserve.getsockname()[1])
    children: dict[int, int] = {}
    stopping = False

    def spawn(worker: int) -> None:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                reserve.close()
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker's guard installs its own
                sock = make_socket(listen.host, port, reuse_port=True, listen=True, backlog=listen.backlog)
                code = _run_worker(config, guard_factory, sock, worker, hooks)
            finally:
                os._exit(code)
        children[pid] = worker

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def forward_hup(_signum: int, _frame: object) -> None:
        # Reload (policy file, masking catalogue) is per worker: pass SIGHUP on to each of them.
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, forward_hup)
    for w in range(listen.workers):
        spawn(w)
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        worker = children.pop(pid, None)
        if worker is None:
            continue
        code = os.waitstatus_to_exitcode(status)
        if not stopping:
            log.error("worker died; restarting", extra={"fields": {"worker": worker, "code": code}})
            time.sleep(0.2)
            spawn(worker)
        elif code != 0:
            exit_code = code
    reserve.close()
    sys.stdout.flush()
    return exit_code


__all__ = ["RunningGateway", "make_socket", "run_gateway", "serve_forever", "start_gateway"]
