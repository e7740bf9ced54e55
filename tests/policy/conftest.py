from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.oidc import Provider


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.close()
