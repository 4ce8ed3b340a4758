"""Shared fixtures: tiny random models (built from configs, nothing downloaded)."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never reach the network: the Hub is offline here anyway, and tests must not wait on it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
