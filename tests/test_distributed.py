"""Lens training on two processes (torchrun, gloo, CPU) trains the lens one process trains on the same
total batch, through the command line and through train_lens, and resumes after a stop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from distributed_worker import SETTINGS, texts
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import TunedLens, train_lens
from lens_widget.distributed import share

TESTS = Path(__file__).parent
DEMO = TESTS.parent / "lens_widget" / "demo_files" / "model"
TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
"""Two processes sum each step's gradient in another order than one: measured 7.5e-9 at most on
parameters of about 0.07 after 4 steps of the demo model."""


def torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=TESTS.parent)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_the_command_line_under_torchrun_trains_the_one_process_lens(tmp_path: Path) -> None:
    (tmp_path / "texts.txt").write_text("\n\n".join(texts()), encoding="utf-8")
    args = ["--model", str(DEMO), "--texts", str(tmp_path / "texts.txt"), "--steps", "4", "--tokens-per-step",
            "512", "--max-length", "64", "--lr", "0.5", "--no-progress"]
    two = torchrun("-m", "lens_widget", "train", *args, "--out", str(tmp_path / "two"))
    assert two.stdout.count("saved the tuned lens") == 1  # rank 0 alone writes and says so
    one = subprocess.run([sys.executable, "-m", "lens_widget", "train", *args, "--out", str(tmp_path / "one")],
                         capture_output=True, text=True, timeout=600, cwd=TESTS.parent)
    assert one.returncode == 0, one.stderr
    a, b = TunedLens.load(tmp_path / "one"), TunedLens.load(tmp_path / "two")
    moved = False
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(q, p, **TOLERANCE)
        moved |= bool(p.abs().max() > 1e-3)
    assert moved  # the lens really trained away from zero


def test_train_lens_on_two_processes_matches_one_and_resumes_after_a_stop(tmp_path: Path) -> None:
    torchrun(str(TESTS / "distributed_worker.py"), str(tmp_path))
    chunk = 3 * 4 * 2 * 16 * 300
    one = train_lens(tiny_model("gpt_neox", vocab_size=300), texts(), tokenizer=tiny_tokenizer(300), chunk_bytes=chunk,
                     **SETTINGS)
    expected = one.state_dict()
    for rank in (0, 1):
        straight = torch.load(tmp_path / f"rank{rank}-straight.pt", weights_only=True)
        resumed = torch.load(tmp_path / f"rank{rank}-resumed.pt", weights_only=True)
        assert resumed["step_at_stop"] == 2
        for key, value in expected.items():
            torch.testing.assert_close(straight[key], value, **TOLERANCE)
            torch.testing.assert_close(resumed["lens"][key], straight[key], rtol=0, atol=0)  # exactly
    saved = TunedLens.load(tmp_path / "lens")
    for key, value in saved.layer_translators.state_dict().items():
        torch.testing.assert_close(value, expected[f"layer_translators.{key}"], **TOLERANCE)


def test_a_step_must_give_every_process_a_sequence() -> None:
    assert share([1, 2, 3, 4, 5], 1, 2) == [2, 4]
    with pytest.raises(ValueError, match="a step holds 1 sequences but 2 processes train: raise tokens_per_step"):
        share([1], 0, 2)
