"""The demo model shipped inside the package: it does its tasks, its lens beats the logit lens, it fits.

The lens comparison is computed here in float64 from the model's own hidden states, final norm and
head, independently of the package's grid code, on documentation topics the run held out and on task
lines with fresh random strings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lens_widget
from lens_widget import DEMO_TEXT, LensSession, TunedLens, demo_report, load_demo
from lens_widget.bundled import DEMO_FILES
from lens_widget.errors import LensWidgetError
from lens_widget.payload import apply_update

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import train_demo  # noqa: E402

BUDGET = 10 * 2**20
"""The issue's budget for weights, tokenizers and lenses together."""


@pytest.fixture(scope="module")
def final():
    return load_demo("final")


@pytest.fixture(scope="module")
def early():
    return load_demo("early")


def greedy(model, tokenizer, prompt: str, max_new: int = 40) -> str:
    """Greedy decoding up to a newline: the plain loop, one full forward pass per token."""
    ids = tokenizer(prompt)["input_ids"]
    new: list[int] = []
    with torch.no_grad():
        for _ in range(max_new):
            token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if "\n" in tokenizer.decode([token]) or token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new)


SEED_PROMPTS = [
    ("Copy: A!2j!#u&NGApS&MkkHe8Gm!#\nPaste: ", "A!2j!#u&NGApS&MkkHe8Gm!#"),
    ("Copy: Zq7&x\nPaste: ", "Zq7&x"),
    ("Copy: 9f#KkLmn!?pQ2\nPaste: ", "9f#KkLmn!?pQ2"),
    ("inc 13 ", "14"),
    ("inc 99 ", "100"),
    ("inc 409 ", "410"),
    ("add 13 2 ", "15"),
    ("add 58 7 ", "65"),
    ("add 91 9 ", "100"),
]


@pytest.mark.parametrize(("prompt", "answer"), SEED_PROMPTS)
def test_the_demo_model_answers_the_seed_prompts(final, prompt: str, answer: str) -> None:
    model, tokenizer, _ = final
    assert greedy(model, tokenizer, prompt) == answer


@torch.no_grad()
def per_layer_kl(model, lens: TunedLens, ids: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean KL(model output ‖ lens) per layer in nats, (tuned, logit), in float64."""
    out = model(input_ids=ids, output_hidden_states=True)
    norm = copy.deepcopy(model.gpt_neox.final_layer_norm).double()
    head = model.get_output_embeddings().weight.double()
    final = torch.log_softmax(out.logits.double(), dim=-1)
    # transformers returns the last hidden state after the final norm (newer) or before it (older).
    last = out.hidden_states[-1].double()
    assert any(torch.allclose(final, torch.log_softmax(x @ head.T, -1), atol=1e-4) for x in (last, norm(last))), (
        "the reference reproduces the model's own output"
    )
    tuned, logit = [], []
    for layer in range(lens.num_layers):
        h = out.hidden_states[layer].double()
        translator = lens.layer_translators[layer]
        translated = h + h @ translator.weight.double().T + translator.bias.double()
        for table, x in ((tuned, translated), (logit, h)):
            logq = torch.log_softmax(norm(x) @ head.T, dim=-1)
            table.append(float((final.exp() * (final - logq)).sum(-1).mean()))
    return np.array(tuned), np.array(logit)


def held_out_ids(tokenizer, kind: str) -> torch.Tensor:
    settings = train_demo.Settings(**demo_report()["settings"])
    if kind == "docs":
        _, held = train_demo.doc_texts(settings.seed, settings.heldout_share)
        return train_demo.heldout_rows(tokenizer, held, settings.context, 16)
    tasks = train_demo.Tasks(settings)
    rng = random.Random(1234)  # strings and numbers the report's evaluation did not use either
    lines = [
        tasks.copy(rng, 24) if i % 3 == 0 else tasks.add(rng, True) if i % 3 == 1 else tasks.inc(rng, True)
        for i in range(300)
    ]
    return train_demo.heldout_rows(tokenizer, ["".join(p + a + "\n" for p, a in lines)], settings.context, 8)


@pytest.mark.parametrize("checkpoint", ["final", "early"])
@pytest.mark.parametrize("kind", ["docs", "tasks"])
def test_the_shipped_lens_beats_the_logit_lens_at_every_layer_on_held_out_text(
    checkpoint: str, kind: str, final, early
) -> None:
    model, tokenizer, lens = final if checkpoint == "final" else early
    tuned, logit = per_layer_kl(model, lens, held_out_ids(tokenizer, kind))
    assert (tuned < logit).all(), f"tuned {tuned.round(3)} vs logit {logit.round(3)}"


def test_the_files_fit_the_budget_and_are_the_ones_the_report_describes() -> None:
    files = [p for p in DEMO_FILES.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= BUDGET
    report = demo_report()
    assert report["sha256"], "the report lists the weight files"
    for name, digest in report["sha256"].items():
        assert hashlib.sha256((DEMO_FILES / name).read_bytes()).hexdigest() == digest, name
    assert {p.relative_to(DEMO_FILES).as_posix() for p in files if p.suffix in (".safetensors", ".pt")} == set(
        report["sha256"]
    )


def test_the_report_meets_the_targets_and_early_is_a_real_contrast() -> None:
    report = demo_report()
    accuracy, early = report["accuracy"], report["early_accuracy"]
    assert accuracy["copy"] >= 0.8 and accuracy["inc"] >= 0.9 and accuracy["add"] >= 0.5
    assert report["tuned_beats_logit_everywhere"]
    assert early["copy"] < accuracy["copy"] - 0.3 and early["add"] < accuracy["add"] - 0.3
    assert report["seconds"]["total"] < 30 * 60


def test_the_shipped_lens_folders_are_tuned_lens_compatible() -> None:
    for name in ("model_lens", "early_lens"):
        config = json.loads((DEMO_FILES / name / "config.json").read_text())
        assert config["num_hidden_layers"] == demo_report()["settings"]["layers"]
        params = torch.load(DEMO_FILES / name / "params.pt", weights_only=True)
        assert set(params) == {f"{i}.{p}" for i in range(config["num_hidden_layers"]) for p in ("weight", "bias")}


def test_demo_opens_the_final_model_with_its_tuned_lens_on_the_tasks() -> None:
    widget = lens_widget.demo()
    assert widget.text == DEMO_TEXT
    assert widget.lens == "tuned"
    state = apply_update(None, widget.snapshot)
    assert state.n_tokens == len(load_demo()[1](DEMO_TEXT)["input_ids"])
    assert lens_widget.demo("add 13 2 ").text == "add 13 2 "


def test_demo_compare_is_early_against_final_named_by_their_steps() -> None:
    widget = lens_widget.demo(compare=True)
    training = demo_report()["training"]
    state = apply_update(None, widget.snapshot)
    assert state.diff is not None
    assert widget.session.names == (f"early (step {training['early_step']})", f"final (step {training['steps']})")


def test_the_final_model_copies_where_the_early_one_does_not(final, early) -> None:
    """What the A/B picture shows: top-1 agreement with the pasted string, per model, on one prompt."""
    prompt = "Copy: A!2j!#u&NGApS&MkkHe8Gm!#\nPaste: A!2j!#u&NGApS&MkkHe8Gm!#"
    hits = {}
    for name, (model, tokenizer, lens) in (("final", final), ("early", early)):
        session = LensSession(model, tokenizer, lens)
        session.set_text(prompt)
        _, top_ids, _ = session.grid_arrays()
        ids = tokenizer(prompt)["input_ids"]
        paste = len(tokenizer("Copy: A!2j!#u&NGApS&MkkHe8Gm!#\nPaste: ")["input_ids"])
        output_row = top_ids[-1, paste - 1 : len(ids) - 1, 0]
        hits[name] = float(np.mean(output_row == np.array(ids[paste:])))
    assert hits["final"] == 1.0 and hits["early"] < 0.5, hits


def test_the_demo_adds_a_single_digit_and_no_more_as_the_readme_and_notebook_say(final) -> None:
    """The README's words are a claim about the model: right where the second number is a digit,
    and (training never showing more) wrong where it has two, so "it adds" alone would overstate it."""
    model, tokenizer, _ = final
    rng = random.Random(7)
    accuracy = {}
    for name, (low, high) in {"digit": (0, 9), "two digits": (10, 99)}.items():
        pairs = [(rng.randint(0, 99), rng.randint(low, high)) for _ in range(100)]
        got = train_demo.greedy_batch(model, tokenizer, [f"add {a} {b} " for a, b in pairs], 6)
        accuracy[name] = sum(g == str(a + b) for g, (a, b) in zip(got, pairs, strict=True)) / len(pairs)
    assert accuracy["digit"] >= 0.9 and accuracy["two digits"] <= 0.1, accuracy
    readme = (ROOT / "README.md").read_text()
    notebook = (ROOT / "examples" / "quickstart.ipynb").read_text()
    said = "adds a single digit to a number below 100"
    assert said in " ".join(readme.split()) and "add a single digit to a number below 100" in notebook
    assert f"`add_b_max = {train_demo.Settings().add_b_max}`" in readme


def test_layer_3_predicts_the_number_of_copied_characters_the_readme_says(final) -> None:
    """The README's "13 of 24" is a count on the quick start's Paste line: the tuned lens's top-1 at
    layer 3 against the characters pasted next, and all of them at the output."""
    model, tokenizer, lens = final
    session = LensSession(model, tokenizer, lens)
    session.set_text(DEMO_TEXT)
    _, top_ids, _ = session.grid_arrays()
    copied = "A!2j!#u&NGApS&MkkHe8Gm!#"
    start = len(tokenizer(f"Copy: {copied}\nPaste: ")["input_ids"])
    end = len(tokenizer(f"Copy: {copied}\nPaste: {copied}")["input_ids"])
    pasted = np.array(tokenizer(DEMO_TEXT)["input_ids"][start:end])
    hits = {row: int(np.sum(top_ids[r, start - 1 : end - 1, 0] == pasted)) for r, row in enumerate(session.rows)}
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert f"layer 3 already predicts about half of the copied characters ({hits[3]} of {len(pasted)})" in readme
    assert hits[model.config.num_hidden_layers] == len(pasted) and 0.35 <= hits[3] / len(pasted) <= 0.65, hits


def test_a_bad_checkpoint_name_is_refused() -> None:
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        load_demo("middle")  # type: ignore[arg-type]


def test_missing_files_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(lens_widget.bundled, "DEMO_FILES", tmp_path)
    with pytest.raises(LensWidgetError, match=r"train_demo\.py"):
        load_demo()


def test_train_demo_is_reproducible_and_writes_what_the_package_loads(tmp_path: Path) -> None:
    settings = {
        "steps": 12,
        "lens_steps": 2,
        "eval_prompts": 4,
        "layers": 2,
        "hidden": 32,
        "vocab_size": 300,
        "batch": 4,
        "context": 32,
        "lens_tokens_per_step": 128,
    }
    reports = [train_demo.build(train_demo.Settings(**settings), tmp_path / name) for name in ("one", "two")]
    assert reports[0]["sha256"] == reports[1]["sha256"]
    assert set(reports[0]["sha256"]) == {
        "model/model.safetensors",
        "early/model.safetensors",
        "model_lens/params.pt",
        "early_lens/params.pt",
    }
    model_dir = tmp_path / "one"
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir / "model")
    TunedLens.load(model_dir / "model_lens", model)
