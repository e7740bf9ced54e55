"""`graphwarden serve` and `graphwarden check-config`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from graphwarden.config import GatewayConfig, load_config
from graphwarden.errors import ConfigError
from graphwarden.ops import setup_logging


def _load(path: str | None) -> GatewayConfig:
    config = load_config(path)
    return config


def _serve(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config)
        overrides: dict[str, Any] = {}
        if args.port is not None:
            overrides["port"] = args.port
        if args.host is not None:
            overrides["host"] = args.host
        if args.workers is not None:
            overrides["workers"] = args.workers
        if overrides or args.upstream is not None:
            import msgspec

            from graphwarden.config import convert_config

            raw = msgspec.to_builtins(config)
            raw["listen"].update(overrides)
            if args.upstream is not None:
                raw["upstream"]["url"] = args.upstream
            config = convert_config(raw)  # validated like the file
        setup_logging(config.logging.level)
        from graphwarden.assembly import Assembly

        Assembly(config).validate()  # fail before listening
    except ConfigError as exc:
        print(exc.render(args.config or "<defaults>"), file=sys.stderr)
        return 2
    from graphwarden.listener import run_gateway

    assembly = Assembly(config)
    return run_gateway(config, assembly.build_guard, hooks=(assembly.install,))


def _check(args: argparse.Namespace) -> int:
    try:
        config = _load(args.config)
        from graphwarden.assembly import Assembly

        Assembly(config).validate()
    except ConfigError as exc:
        print(exc.render(args.config), file=sys.stderr)
        return 2
    print(f"{args.config}: ok (listen {config.listen.host}:{config.listen.port}, upstream {config.upstream.url})")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", help="TOML config file (default: embedded defaults)")
    p.add_argument("--host", help="override listen.host")
    p.add_argument("--port", type=int, help="override listen.port")
    p.add_argument("--workers", type=int, help="override listen.workers")
    p.add_argument("--upstream", help="override upstream.url (e.g. http://127.0.0.1:2024)")
    p.set_defaults(func=_serve)
    c = sub.add_parser("check-config", help="validate a config file without serving")
    c.add_argument("config", help="TOML config file")
    c.set_defaults(func=_check)
