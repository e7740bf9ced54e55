"""Configuration: typed decoding, and every mistake named with its key path and a fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from graphwarden.config import load_config, parse_config
from graphwarden.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _err(text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value


def test_defaults_load() -> None:
    cfg = load_config(None)
    assert cfg.upstream.url == "http://127.0.0.1:2024"
    assert cfg.listen.port == 8080


def test_example_file_is_valid() -> None:
    cfg = load_config(ROOT / "examples" / "graphwarden.toml")
    assert cfg.upstream.url.startswith("http")


@pytest.mark.parametrize(
    ("text", "key", "fragment"),
    [
        ("[listen]\nprot = 1\n", "listen.prot", "valid keys here"),
        ("[listen]\nport = \"80\"\n", "listen.port", "whole number"),
        ("[upstream]\nurl = \"ftp://x\"\n", "upstream.url", "http"),
        ("[upstream]\nurl = \"http://x:1/path\"\n", "upstream.url", "scheme, host and port"),
        ("[limits]\nmax_header_bytes = 10\n", "limits.max_header_bytes", "at least 1024"),
        ("[upstream.headers]\nx-api-key = \"file:/nonexistent/key\"\n", "upstream.headers.x-api-key", "fix the path"),
        ("[logging]\nlevel = \"loud\"\n", "logging.level", ""),
        ("[evidence]\ncron_poll_s = 0\n", "evidence.cron_poll_s", "above 0"),
        ("nonsense = \n", "(file)", "TOML"),
    ],
)
def test_mistakes_name_key_and_fix(text: str, key: str, fragment: str) -> None:
    err = _err(text)
    assert err.path == key
    rendered = err.render("x.toml")
    assert key in rendered and "fix" in rendered.lower()
    assert fragment in rendered


def test_env_reference_must_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GW_TEST_MISSING", raising=False)
    p = tmp_path / "c.toml"
    p.write_text('[upstream.headers]\nx-api-key = "env:GW_TEST_MISSING"\n')
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "GW_TEST_MISSING" in info.value.render(str(p))


def test_check_config_cli_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[listen]\nport = \"eighty\"\n")
    r = subprocess.run([sys.executable, "-m", "graphwarden", "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert "listen.port" in r.stderr
    missing = subprocess.run([sys.executable, "-m", "graphwarden", "check-config", str(tmp_path / "nope.toml")], capture_output=True, text=True)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    good = subprocess.run([sys.executable, "-m", "graphwarden", "check-config", str(ROOT / "examples" / "graphwarden.toml")], capture_output=True, text=True)
    assert good.returncode == 0, good.stderr


def test_serve_refuses_bad_config_before_listening(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[upstream]\nurl = \"nope\"\n")
    r = subprocess.run([sys.executable, "-m", "graphwarden", "serve", "--config", str(bad)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "upstream.url" in r.stderr
