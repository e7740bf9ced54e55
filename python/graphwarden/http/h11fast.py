"""Two shortcuts around h11's per-event costs on the hot path.

h11 validates every header of every event we *send* with regular expressions, and its `Headers`
sequence iterates through `collections.abc.Sequence.__iter__` (one `__getitem__` call per
field). On a proxied small-JSON request that is about a third of h11's time, spent re-checking
headers that h11 itself already validated when it parsed them (the client's request, the
upstream's response) or that the gateway built from validated configuration.

- `items(headers)` reads the (lower-cased name, value) pairs of a parsed `Headers` in one list
  comprehension.
- `trusted(pairs)` wraps pairs in a `Headers` so that h11 skips re-validation when the event is
  constructed. Only for pairs that come from h11-parsed messages or from validated config: h11
  still serialises them and still enforces framing (Content-Length / Transfer-Encoding) when
  the event is sent.

Both use h11's internal `_full_items` layout; pyproject pins h11 to the 0.16 series and
tests/proxy/test_h11fast.py fails loudly if the layout changes.
"""

from __future__ import annotations

from collections.abc import Iterable

from h11._headers import Headers


def items(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(name, value) for _, name, value in headers._full_items]


def trusted(pairs: Iterable[tuple[bytes, bytes]]) -> Headers:
    return Headers([(name, name, value) for name, value in pairs])


__all__ = ["Headers", "items", "trusted"]
