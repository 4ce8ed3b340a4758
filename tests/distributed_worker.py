"""Run by tests/test_distributed.py under `torchrun --nproc-per-node=2`: trains a lens straight through,
then again interrupted (Ctrl-C in every process at the same step) and resumed from its checkpoint,
each process saving what it trained to `<out>/rank<r>-<run>.pt`."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from test_training import interrupting
from tiny_models import tiny_model, tiny_tokenizer

from lens_widget import train_lens
from lens_widget.distributed import close, init_from_environment, world

SETTINGS = {"steps": 6, "checkpoint_every": 2, "tokens_per_step": 64, "max_length": 16, "progress": False}
"""Four 16-token sequences a step, two per process; chunk_bytes splits each step's layers into chunks,
so a chunk's forward reads some translators only."""


def texts() -> list[str]:
    words = "the lens shows what each layer of the model would predict next while the user types".split()
    return [" ".join(words[(i * 7) % len(words) :] + words[: (i * 7) % len(words)]) for i in range(24)]


def train(out: Path) -> None:
    model, tokenizer = tiny_model("gpt_neox", vocab_size=300), tiny_tokenizer(300)
    chunk = 3 * 4 * 2 * 16 * 300  # two layers of a two-sequence batch per chunk: layers are split
    rank = world()[0]
    straight = train_lens(model, texts(), tokenizer=tokenizer, chunk_bytes=chunk, **SETTINGS)
    torch.save(straight.state_dict(), out / f"rank{rank}-straight.pt")
    checkpoint = out / "checkpoint"
    try:  # both processes stop at their 5th model call: step 3's first batch, after step 2's checkpoint
        train_lens(interrupting(model, at_call=5), texts(), tokenizer=tokenizer, chunk_bytes=chunk,
                   checkpoint=checkpoint, **SETTINGS)
        raise AssertionError("the run was not interrupted")
    except KeyboardInterrupt:
        pass
    dist.barrier()
    step = torch.load(checkpoint / "checkpoint.pt", weights_only=True)["step"]
    resumed = train_lens(model, texts(), tokenizer=tokenizer, chunk_bytes=chunk, checkpoint=checkpoint,
                         out=out / "lens", **SETTINGS)
    torch.save({"lens": resumed.state_dict(), "step_at_stop": step}, out / f"rank{rank}-resumed.pt")


if __name__ == "__main__":
    init_from_environment("cpu")
    try:
        train(Path(sys.argv[1]))
    finally:
        close()
