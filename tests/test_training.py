"""Training a tuned lens: it beats the logit lens on held-out text, reproducibly, resumably, safely.

Every test trains a tiny random model for a handful of steps on the CPU, in seconds.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from tiny_models import FAMILIES, LAYERS, tiny_model, tiny_tokenizer

import lens_widget
from lens_widget import ModelAdapter, TrainingError, TunedLens, compute_grid, next_token_targets, train_lens
from lens_widget.__main__ import read_documents
from lens_widget.training import CHECKPOINT_FILE

WORDS = (
    "the a lens layer model token predicts next every capital of France is Paris Berlin Germany two plus "
    "four code return main numbers quick brown fox jumps over lazy dog researchers type sentence picture"
).split()

VOCAB = 300
"""Enough for the tiny byte-level tokenizer's 257 tokens."""

SMALL = {"tokens_per_step": 64, "max_length": 16, "progress": False}
"""Four sequences of 16 tokens per step: one model forward pass per step."""


def sentences(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14))) + "." for _ in range(count)]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer(VOCAB)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return sentences(0, 200)


def held_out_kl(model, lens, tokenizer) -> np.ndarray:
    """Per-layer KL(model output ‖ lens) on text not trained on, averaged over positions."""
    adapter = ModelAdapter(model)
    per_text = []
    for text in sentences(1, 6):
        ids = torch.tensor(tokenizer(text)["input_ids"])
        grid = compute_grid(adapter, lens, adapter.forward(ids), next_token_targets(ids), rows=range(LAYERS))
        per_text.append(grid.statistic("forward_kl").mean(axis=1))
    return np.mean(per_text, axis=0)


def params(lens: TunedLens) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in lens.layer_translators.state_dict().items()}


def assert_identical(a: TunedLens, b: TunedLens) -> None:
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        assert torch.equal(pa[key], pb[key]), key


@pytest.mark.parametrize("family", FAMILIES)
def test_the_batched_training_pass_equals_the_widgets_pass_and_can_enter_autograd(family) -> None:
    """ModelAdapter.hidden_states: a batch gives each sequence's hidden states exactly as `run` does
    (a pad or EOS token inside is not padding), in tensors autograd accepts, unlike inference_mode's."""
    adapter = ModelAdapter(tiny_model(family))
    ids = torch.randint(0, 96, (3, 20), generator=torch.Generator().manual_seed(0))
    ids[:, 5] = 0  # the tiny configs' pad token id
    hidden = adapter.hidden_states(ids)
    assert torch.equal(hidden, torch.stack([adapter.run(row)[0] for row in ids], dim=1))
    assert not hidden.is_inference() and not hidden.requires_grad
    weight = torch.zeros(hidden.shape[-1], requires_grad=True)
    (hidden[1] * weight).sum().backward()
    assert weight.grad is not None


# GPT-NeoX is the demo model's family (LayerNorm). Llama's tiny residual stream (norm ~0.1 under an
# RMSNorm) makes tuned-lens's lr of 1 overshoot, as any lr scaled for real models would; 0.1 suits it.
@pytest.mark.parametrize(("family", "lr"), [("gpt_neox", 1.0), ("gpt2", 1.0), ("llama", 0.1)])
def test_training_beats_the_logit_lens_at_every_layer_on_held_out_text(family, lr, tokenizer, texts) -> None:
    model = tiny_model(family, vocab_size=VOCAB)
    logit = held_out_kl(model, None, tokenizer)
    lens = train_lens(model, texts, tokenizer=tokenizer, steps=40, lr=lr, **SMALL)
    tuned = held_out_kl(model, lens, tokenizer)
    assert logit.shape == tuned.shape == (LAYERS,)
    assert (tuned < logit).all(), (family, logit, tuned)
    weight = lens.layer_translators[0].weight
    assert weight.dtype == torch.float32 and not weight.requires_grad


def test_a_half_precision_model_trains_a_float32_lens(tokenizer, texts) -> None:
    """The lens learns in float32 whatever the model's dtype; fitted back to the model it beats the logit lens."""
    model = tiny_model("gpt_neox", vocab_size=VOCAB, dtype=torch.bfloat16)
    lens = train_lens(model, texts, tokenizer=tokenizer, steps=40, **SMALL)
    assert lens.layer_translators[0].weight.dtype == torch.float32
    assert (held_out_kl(model, lens.fit(model), tokenizer) < held_out_kl(model, None, tokenizer)).all()


def test_the_saved_folder_loads_and_equals_the_returned_lens(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    lens = train_lens(model, texts, tokenizer=tokenizer, steps=3, out=tmp_path / "lens", **SMALL)
    assert sorted(p.name for p in (tmp_path / "lens").iterdir()) == ["config.json", "params.pt", "params.pt.sha256"]
    loaded = TunedLens.load(tmp_path / "lens", model)
    assert loaded.config == lens.config
    assert_identical(loaded, lens)
    assert any(bool(p.abs().sum() > 0) for p in params(lens).values())  # it did train


def test_the_same_seed_and_data_give_bit_identical_parameters(tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    first = train_lens(model, texts, tokenizer=tokenizer, steps=5, seed=3, **SMALL)
    again = train_lens(model, texts, tokenizer=tokenizer, steps=5, seed=3, **SMALL)
    other = train_lens(model, texts, tokenizer=tokenizer, steps=5, seed=4, **SMALL)
    assert_identical(first, again)
    assert not torch.equal(params(first)["0.weight"], params(other)["0.weight"])  # the seed orders the data


def interrupting(model, at_call: int) -> ModelAdapter:
    """An adapter whose model pass raises KeyboardInterrupt on its `at_call`-th call, as Ctrl-C would."""
    adapter = ModelAdapter(model)
    real = adapter.hidden_states
    calls = 0

    def hidden_states(input_ids: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        if calls == at_call:
            raise KeyboardInterrupt
        return real(input_ids)

    adapter.hidden_states = hidden_states  # type: ignore[method-assign]
    return adapter


def test_an_interrupted_run_resumes_to_the_parameters_of_an_uninterrupted_one(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    run = {"tokenizer": tokenizer, "steps": 8, "checkpoint_every": 3, **SMALL}
    straight = train_lens(model, texts, **run)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(KeyboardInterrupt):  # stopped during step 5: the checkpoint holds step 3
        train_lens(interrupting(model, at_call=5), texts, checkpoint=ckpt, out=tmp_path / "lens", **run)
    assert torch.load(ckpt / CHECKPOINT_FILE, weights_only=True)["step"] == 3
    assert not (tmp_path / "lens").exists()
    resumed = train_lens(model, texts, checkpoint=ckpt, out=tmp_path / "lens", **run)
    assert_identical(resumed, straight)
    assert torch.load(ckpt / CHECKPOINT_FILE, weights_only=True)["step"] == 8
    assert_identical(TunedLens.load(tmp_path / "lens"), straight)
    # A finished run's checkpoint returns its lens at once: the model is never run again.
    done = train_lens(interrupting(model, at_call=1), texts, checkpoint=ckpt, **run)
    assert_identical(done, straight)


def test_a_checkpoint_refuses_other_settings_or_other_data(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    ckpt = tmp_path / "ckpt"
    train_lens(model, texts, tokenizer=tokenizer, steps=4, checkpoint=ckpt, **SMALL)
    # More steps would change the linear decay of every step already taken: not the same run.
    with pytest.raises(ValueError, match=r"other settings \(steps=4 there, 8 now\)"):
        train_lens(model, texts, tokenizer=tokenizer, steps=8, checkpoint=ckpt, **SMALL)
    with pytest.raises(ValueError, match="trained on other data"):
        train_lens(model, sentences(9, 200), tokenizer=tokenizer, steps=4, checkpoint=ckpt, **SMALL)
    other_model = tiny_model("gpt_neox", vocab_size=VOCAB, seed=1)  # same shape, other weights
    with pytest.raises(ValueError, match="other settings \\(model='"):
        train_lens(other_model, texts, tokenizer=tokenizer, steps=4, checkpoint=ckpt, **SMALL)


def test_a_nan_in_the_model_stops_at_step_1_and_saves_nothing(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    with torch.no_grad():
        model.gpt_neox.layers[1].mlp.dense_h_to_4h.weight[0, 0] = float("nan")
    with pytest.raises(TrainingError, match=r"stopped at step 1 of 5: the loss is nan\. The model's own output") as err:
        train_lens(
            model, texts, tokenizer=tokenizer, steps=5, out=tmp_path / "lens", checkpoint=tmp_path / "ckpt", **SMALL
        )
    assert "Nothing was saved" in str(err.value)
    assert isinstance(err.value, lens_widget.LensWidgetError)
    assert not (tmp_path / "lens").exists() and not (tmp_path / "ckpt").exists()


def test_a_diverging_lens_stops_at_its_step_and_keeps_the_earlier_checkpoint(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    lens = TunedLens.from_model(model)
    ckpt = tmp_path / "ckpt"
    with pytest.raises(TrainingError) as err:
        train_lens(
            model, texts, tokenizer=tokenizer, lens=lens, steps=5, lr=1e30, checkpoint=ckpt, checkpoint_every=1,
            out=tmp_path / "lens", **SMALL,
        )  # fmt: skip
    message = str(err.value)
    assert "stopped at step 2 of 5" in message and "The lens diverged at layers" in message
    assert "smaller lr" in message and "checkpoint of step 1" in message
    saved = torch.load(ckpt / CHECKPOINT_FILE, weights_only=True)
    assert saved["step"] == 1
    assert not (tmp_path / "lens").exists()
    # The lens trained in place holds step 1's values, the checkpoint's, and nothing of the NaN step.
    for key, value in params(lens).items():
        assert torch.isfinite(value).all() and torch.equal(value, saved["lens"][key]), key


def test_the_model_is_left_as_it_was(tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB).train()
    model.gpt_neox.embed_in.weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    train_lens(model, texts, tokenizer=tokenizer, steps=2, **SMALL)
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_training_works_inside_no_grad_and_inference_mode(tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    reference = train_lens(model, texts, tokenizer=tokenizer, steps=2, **SMALL)
    with torch.no_grad():
        assert_identical(train_lens(model, texts, tokenizer=tokenizer, steps=2, **SMALL), reference)
    with torch.inference_mode():
        assert_identical(train_lens(model, texts, tokenizer=tokenizer, steps=2, **SMALL), reference)
        made_inside = TunedLens.from_model(model)  # its parameters are inference tensors
    assert_identical(train_lens(model, texts, tokenizer=tokenizer, lens=made_inside, steps=2, **SMALL), reference)


def test_chunking_changes_nothing_but_the_order_of_sums(tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    whole = train_lens(model, texts, tokenizer=tokenizer, steps=4, **SMALL)
    one_row_one_layer = train_lens(model, texts, tokenizer=tokenizer, steps=4, chunk_bytes=1, **SMALL)
    for key, value in params(whole).items():
        torch.testing.assert_close(params(one_row_one_layer)[key], value, rtol=1e-4, atol=1e-6)


def test_texts_are_packed_as_tokenized_documents_ended_with_eos(tokenizer, texts) -> None:
    """Texts train exactly as their token ids packed by hand: each document tokenized and ended with EOS,
    the stream cut into max_length pieces; token rows as a tensor or as lists are the same data."""
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    stream: list[int] = []
    for text in texts:
        stream += [*tokenizer(text)["input_ids"], tokenizer.eos_token_id]
    rows = [stream[i : i + 16] for i in range(0, len(stream), 16)]
    from_texts = train_lens(model, texts, tokenizer=tokenizer, steps=3, **SMALL)
    from_lists = train_lens(model, [rows], steps=3, **SMALL)
    assert_identical(from_lists, from_texts)
    full = len(stream) // 16 * 16
    as_tensor = [torch.tensor(stream[:full]).reshape(-1, 16), torch.tensor(stream[full:])]
    assert_identical(train_lens(model, as_tensor, steps=3, **SMALL), from_texts)


def test_a_one_shot_iterator_is_replayed_when_it_runs_out(tokenizer) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    few = sentences(2, 5)  # about one step of tokens, for 6 steps
    listed = train_lens(model, few, tokenizer=tokenizer, steps=6, **SMALL)
    generated = train_lens(model, (t for t in few), tokenizer=tokenizer, steps=6, **SMALL)
    assert_identical(generated, listed)


def test_the_progress_bar_shows_the_loss_and_can_be_turned_off(capsys, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    train_lens(model, texts, tokenizer=tokenizer, steps=2, **{**SMALL, "progress": True})
    shown = capsys.readouterr().err
    assert "tuned lens" in shown and "2/2" in shown and "loss=" in shown
    train_lens(model, texts, tokenizer=tokenizer, steps=2, **SMALL)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "steps must be a positive integer"),
        ({"tokens_per_step": 0}, "tokens_per_step must be a positive integer"),
        ({"max_length": -1}, "max_length must be a positive integer"),
        ({"checkpoint_every": 0}, "checkpoint_every must be a positive integer"),
        ({"lr": 0.0}, "lr must be positive"),
        ({"lr": float("nan")}, "lr must be a finite number"),
        ({"momentum": 1.0}, r"momentum must be in \[0, 1\)"),
        ({"weight_decay": -1.0}, "weight_decay must be >= 0"),
        ({"clip": 0.0}, "clip must be positive"),
        ({"data": []}, "data holds no tokens"),
        ({"data": ["", "  \n"]}, "data holds no tokens"),
        ({"data": "one text"}, "not a single string"),
        ({"tokenizer": None}, "pass tokenizer="),
        ({"data": [[1, 2, VOCAB]]}, f"token id {VOCAB} is outside the model's vocabulary 0..{VOCAB - 1}"),
        ({"data": [[1, -2, 3]]}, "token id -2 is outside"),
        ({"data": [torch.rand(2, 8)]}, "token ids must be integers"),
        ({"data": [object()]}, "expected texts or token ids"),
    ],
)
def test_bad_arguments_and_data_are_clear_value_errors(kwargs, message, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    call = {"data": texts, "tokenizer": tokenizer, "steps": 2, **SMALL, **kwargs}
    data = call.pop("data")
    with pytest.raises(ValueError, match=message):
        train_lens(model, data, **call)


def test_the_texts_file_holds_documents_separated_by_blank_lines(tmp_path) -> None:
    path = tmp_path / "texts.txt"
    path.write_text("first line\nsame document\n\n  \t\nsecond\r\n\r\nthird\n\n\n", encoding="utf-8")
    assert read_documents(path) == ["first line\nsame document", "second", "third"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run(
        [sys.executable, "-m", "lens_widget", *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


def test_the_command_line_trains_and_saves_a_lens_folder(tmp_path, tokenizer, texts) -> None:
    model = tiny_model("gpt_neox", vocab_size=VOCAB)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n\n".join(texts), encoding="utf-8")
    common = ["--model", str(tmp_path / "model"), "--texts", str(corpus), "--max-length", "16"]
    done = cli("train", *common, "--out", str(tmp_path / "lens"), "--steps", "3", "--tokens-per-step", "64",
               "--seed", "2", "--lr", "0.5", "--checkpoint", str(tmp_path / "ckpt"), "--device", "cpu")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"saved the tuned lens to {tmp_path / 'lens'}" in done.stdout
    assert "loss=" in done.stderr  # the progress bar
    lens = TunedLens.load(tmp_path / "lens", model)
    assert lens.config.base_model_name_or_path == str(tmp_path / "model")
    assert torch.load(tmp_path / "ckpt" / CHECKPOINT_FILE, weights_only=True)["step"] == 3
    # The same run through the API (threads may order float sums differently: close, not equal).
    same = train_lens(model, texts, tokenizer=tokenizer, steps=3, seed=2, lr=0.5, **SMALL)
    for key, value in params(same).items():
        torch.testing.assert_close(params(lens)[key], value, rtol=1e-4, atol=1e-6)

    refused = cli("train", *common, "--out", str(tmp_path / "other"), "--steps", "0")
    assert refused.returncode == 1 and "error: steps must be a positive integer" in refused.stderr
    assert not (tmp_path / "other").exists()
    missing = cli("train", "--model", str(tmp_path / "model"), "--texts", str(tmp_path / "none.txt"), "--out", "x")
    assert missing.returncode == 1 and "is not a file" in missing.stderr
    usage = cli("train", "--model", "m")
    assert usage.returncode == 2 and "--texts" in usage.stderr


@pytest.mark.parametrize("which", ["out", "checkpoint"])
@pytest.mark.parametrize("place", ["a file", "under a file"])
def test_an_out_or_checkpoint_that_cannot_be_a_folder_is_refused_before_training(tmp_path, which, place) -> None:
    """The paths were first touched after the last step: a file there lost the whole run."""
    blocker = tmp_path / "taken.txt"
    blocker.write_text("not a folder", encoding="utf-8")
    path = blocker if place == "a file" else blocker / "lens"
    read = []

    def data():
        read.append(True)
        yield from [[1, 2, 3, 4]] * 8

    with pytest.raises(ValueError) as refused:
        train_lens(tiny_model("gpt2", vocab_size=VOCAB), data(), steps=1, **SMALL, **{which: path})
    assert str(refused.value).startswith(f"{which} {str(path)!r}")
    assert f"{str(blocker)!r} is a file, not a folder" in str(refused.value)
    assert not read, "training started"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_out_folder_is_refused_before_training(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(ValueError, match="cannot be written"):
            train_lens(tiny_model("gpt2", vocab_size=VOCAB), [[1, 2, 3]], steps=1, **SMALL, out=locked / "lens")
    finally:
        locked.chmod(0o700)


def test_the_command_line_says_in_one_line_what_is_wrong_with_its_paths(tmp_path, tokenizer) -> None:
    model = tiny_model("gpt2", vocab_size=VOCAB)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    corpus = tmp_path / "texts.txt"
    corpus.write_text("a first document\n\nand a second", encoding="utf-8")
    taken = tmp_path / "taken.txt"
    taken.write_text("x", encoding="utf-8")
    common = ["train", "--model", str(tmp_path / "model"), "--steps", "1", "--no-progress"]
    for flag in ("--out", "--checkpoint"):
        paths = {"--out": str(tmp_path / "lens"), flag: str(taken)}
        done = cli(*common, "--texts", str(corpus), *(x for item in paths.items() for x in item))
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"error: {flag.lstrip('-')} {str(taken)!r} is a file, not a folder: give a folder's path"
        ]
    latin = tmp_path / "latin1.txt"
    latin.write_bytes(b"caf" + "é au lait".encode("latin-1"))
    done = cli(*common, "--texts", str(latin), "--out", str(tmp_path / "lens"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: --texts {latin} is not UTF-8 text: byte 0xe9 at offset 3 cannot be decoded; "
        "convert it first, e.g. iconv -f latin1 -t utf-8"
    ]
