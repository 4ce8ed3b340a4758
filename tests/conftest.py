"""Shared fixtures: tiny random models (built from configs, nothing downloaded), and the browser of
the browser-test modules."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: the Hub is offline here anyway, and tests must not wait on it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium for one module of browser tests (which calls require_chromium at import, so
    that it is skipped, or fails in CI, before any test runs without one)."""
    from browser_support import chromium, require_chromium

    with chromium(require_chromium()) as launched:
        yield launched
