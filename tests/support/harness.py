"""Runs gateways (and fake upstreams) on a uvloop loop in a background thread, so tests can use
plain blocking sockets and real clients against them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec
import uvloop

from graphwarden.config import GatewayConfig, convert_config
from graphwarden.guard import AllowAllGuard, Guard
from graphwarden.listener.server import RunningGateway, make_socket, start_gateway

T = TypeVar("T")


class LoopThread:
    def __init__(self) -> None:
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        fut: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def make_config(upstream_url: str, **sections: dict[str, Any]) -> GatewayConfig:
    raw: dict[str, Any] = {"upstream": {"url": upstream_url}, "listen": {"port": 0}, "logging": {"access_log": False}}
    for key, value in sections.items():
        if isinstance(value, dict):
            raw.setdefault(key, {}).update(value)
        else:
            raw[key] = value
    return convert_config(raw)


class GatewayHandle:
    def __init__(self, lt: LoopThread, running: RunningGateway) -> None:
        self.lt = lt
        self.running = running
        self.gateway = running.gateway
        self.port = running.port
        self.url = f"http://127.0.0.1:{running.port}"

    def drain(self, deadline_s: float = 5.0) -> None:
        self.lt.run(self.running.drain(deadline_s), timeout=deadline_s + 10)


def start(lt: LoopThread, config: GatewayConfig, guard: Guard | None = None,
          hooks: tuple[Callable[[Any], None], ...] = ()) -> GatewayHandle:
    async def _start() -> RunningGateway:
        sock = make_socket("127.0.0.1", 0, reuse_port=False, listen=True, backlog=1024)
        return await start_gateway(config, guard or AllowAllGuard(), sock=sock, hooks=hooks)

    return GatewayHandle(lt, lt.run(_start()))


__all__ = ["GatewayHandle", "LoopThread", "make_config", "start", "msgspec", "Awaitable"]
