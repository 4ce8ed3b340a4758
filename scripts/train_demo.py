"""Train the demo model: a small GPT-NeoX with its own byte-level BPE that really does a few tasks.

Everything is offline and seeded. The text is the Python documentation's topics shipped with the
standard library (`pydoc_data.topics`) plus generated task data:

    Copy: A!2j!#u&NGApS&MkkHe8Gm!#        inc 13 14        add 13 2 15
    Paste: A!2j!#u&NGApS&MkkHe8Gm!#

Copying a random string needs induction heads, so the curriculum starts copy-heavy with short strings
and lengthens them; spaces and digits are always tokens of their own, so that a prompt ending in
"Paste: " or "inc 13 " is cut into the same tokens as the training text was.

The output folder holds:
    model/      the final model (fp16 safetensors) and its tokenizer
    early/      an early checkpoint of the same run (fp16) and the tokenizer, for the A/B mode
    model_lens/ a tuned lens (lens_widget.train_lens) for the final model as saved
    early_lens/ a tuned lens for the early checkpoint
    report.json task accuracies on held-out prompts (greedy decoding), per-layer KL of the tuned and
                the logit lens on held-out text, times, sizes and the settings that reproduce the run

    python scripts/train_demo.py --out lens_widget/demo_files

The defaults are the shipped run: about 20 minutes on a 2-core CPU. A run is a pure function of its
settings on a given torch build and device; the report records the settings and the sha256 of every
weight file, so a rerun can be checked byte for byte. A GPU is used when present (`--device`), which
changes the floating-point rounding and so the exact weights, not the recipe.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import random
import string
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

from lens_widget.adapter import ModelAdapter
from lens_widget.lenses import TunedLens
from lens_widget.training import train_lens

COPY_CHARS = string.ascii_letters + string.digits + "!#$%&*+?@"
"""Characters of the random strings to copy (the issue's example uses letters, digits, ! # &)."""
EOS = "<|endoftext|>"


@dataclass
class Settings:
    seed: int = 0
    vocab_size: int = 1024
    layers: int = 4
    hidden: int = 128
    heads: int = 4
    context: int = 128
    batch: int = 16
    lr: float = 3e-3
    warmup: int = 200
    weight_decay: float = 0.01
    steps: int = 7000
    early_fraction: float = 0.06
    text_share: float = 0.1
    copy_min: int = 4
    copy_max: int = 28
    copy_start_max: int = 16
    ramp_fraction: float = 0.4
    number_max: int = 999
    add_a_max: int = 99
    add_b_max: int = 9
    heldout_share: float = 0.1
    lens_steps: int = 150
    lens_tokens_per_step: int = 2048
    eval_prompts: int = 200


# ---------------------------------------------------------------------------------------------- data


def _heldout(key: str, seed: int, share: float) -> bool:
    """Whether `key` is held out: a seeded hash, so the split never depends on iteration order."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def doc_texts(seed: int, share: float) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: the Python docs' topics, split by topic name."""
    from pydoc_data.topics import topics

    train, held = [], []
    for name in sorted(topics):
        (held if _heldout("topic:" + name, seed, share) else train).append(topics[name])
    return train, held


class Tasks:
    """Generated task lines; held-out numbers and pairs never appear in training lines."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings

    def inc_held(self, n: int) -> bool:
        return _heldout(f"inc:{n}", self.s.seed, self.s.heldout_share)

    def add_held(self, a: int, b: int) -> bool:
        return _heldout(f"add:{a}:{b}", self.s.seed, self.s.heldout_share)

    def copy_string(self, rng: random.Random, low: int, high: int) -> str:
        return "".join(rng.choice(COPY_CHARS) for _ in range(rng.randint(low, high)))

    def copy(self, rng: random.Random, high: int, low: int | None = None) -> tuple[str, str]:
        text = self.copy_string(rng, self.s.copy_min if low is None else low, high)
        return f"Copy: {text}\nPaste: ", text

    def inc(self, rng: random.Random, held: bool) -> tuple[str, str]:
        while True:
            n = rng.randint(0, self.s.number_max)
            if self.inc_held(n) == held:
                return f"inc {n} ", str(n + 1)

    def add(self, rng: random.Random, held: bool) -> tuple[str, str]:
        while True:
            a, b = rng.randint(0, self.s.add_a_max), rng.randint(0, self.s.add_b_max)
            if self.add_held(a, b) == held:
                return f"add {a} {b} ", str(a + b)

    def weights(self, progress: float) -> tuple[float, float, float]:
        """Shares of (copy, inc, add): copy-heavy first, while the induction heads form."""
        if progress < self.s.ramp_fraction:
            return 0.7, 0.1, 0.2
        return 0.4, 0.2, 0.4

    def copy_high(self, progress: float) -> int:
        ramp = min(1.0, progress / self.s.ramp_fraction)
        return round(self.s.copy_start_max + ramp * (self.s.copy_max - self.s.copy_start_max))

    def line(self, rng: random.Random, progress: float) -> str:
        kind = rng.choices(("copy", "inc", "add"), weights=self.weights(progress))[0]
        if kind == "copy":
            prompt, answer = self.copy(rng, self.copy_high(progress))
        elif kind == "inc":
            prompt, answer = self.inc(rng, held=False)
        else:
            prompt, answer = self.add(rng, held=False)
        return prompt + answer + "\n"


def make_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """A byte-level BPE (GPT-2's scheme) where every space and every digit is a token of its own."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"[ 0-9]"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[EOS],
        show_progress=False,
    )
    words = ["Copy: x\nPaste: x\ninc 1 2\nadd 1 2 3\n"] * 200
    tokenizer.train_from_iterator(texts + words, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS)


class Batches:
    """Seeded training batches: rows of docs text or of task lines, `context + 1` tokens each."""

    def __init__(self, settings: Settings, tokenizer: PreTrainedTokenizerFast, docs: list[str]) -> None:
        self.s = settings
        self.tok = tokenizer
        self.tasks = Tasks(settings)
        self.rng = random.Random(settings.seed)
        eos = tokenizer.eos_token_id
        ids: list[int] = []
        for doc in docs:
            ids += [*tokenizer.encode(doc), eos]
        self.doc_ids = torch.tensor(ids)

    def row(self, progress: float) -> list[int]:
        n = self.s.context + 1
        if self.rng.random() < self.s.text_share:
            start = self.rng.randrange(len(self.doc_ids) - n)
            return self.doc_ids[start : start + n].tolist()
        ids: list[int] = []
        while len(ids) < n:
            ids += self.tok.encode(self.tasks.line(self.rng, progress))
        return ids[:n]

    def next(self, progress: float) -> torch.Tensor:
        return torch.tensor([self.row(progress) for _ in range(self.s.batch)])


# --------------------------------------------------------------------------------------------- model


def make_model(settings: Settings, vocab: int) -> PreTrainedModel:
    torch.manual_seed(settings.seed)
    config = AutoConfig.for_model(
        "gpt_neox",
        vocab_size=vocab,
        hidden_size=settings.hidden,
        num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads,
        intermediate_size=4 * settings.hidden,
        max_position_embeddings=settings.context * 4,
        rope_parameters={"rope_theta": 10000.0, "partial_rotary_factor": 1.0, "rope_type": "default"},
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
    )
    return AutoModelForCausalLM.from_config(config)


def lr_at(step: int, settings: Settings) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    progress = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_fp16(model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    half = copy.deepcopy(model).half()
    half.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def train(
    settings: Settings, tokenizer: PreTrainedTokenizerFast, docs: list[str], out: Path, device: str
) -> tuple[PreTrainedModel, dict[str, Any]]:
    model = make_model(settings, len(tokenizer)).to(device)
    batches = Batches(settings, tokenizer, docs)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": settings.weight_decay}, {"params": other, "weight_decay": 0.0}],
        lr=settings.lr,
        betas=(0.9, 0.98),
    )
    # Early enough that copying and adding do not work yet, late enough that the model is past noise:
    # the A/B mode then shows what the rest of training added.
    early_step = max(1, round(settings.early_fraction * settings.steps))
    start = time.perf_counter()
    log: list[dict[str, float]] = []
    model.train()
    for step in range(1, settings.steps + 1):
        ids = batches.next((step - 1) / settings.steps).to(device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step - 1, settings)
        logits = model(input_ids=ids[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % 100 == 0 or step == settings.steps:
            elapsed = time.perf_counter() - start
            log.append({"step": step, "loss": round(loss.item(), 4), "seconds": round(elapsed, 1)})
            print(f"step {step}/{settings.steps} loss {loss.item():.4f} {elapsed:.0f}s", flush=True)
        if step == early_step:
            save_fp16(model, tokenizer, out / "early")
    model.eval()
    seconds = time.perf_counter() - start
    return model, {"steps": settings.steps, "early_step": early_step, "seconds": round(seconds, 1), "log": log}


# ---------------------------------------------------------------------------------------------- eval


@torch.no_grad()
def greedy_batch(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, prompts: list[str], max_new: int
) -> list[str]:
    """Greedy answers up to the first newline, decoded with the KV cache.

    Prompts are grouped by token count and each group runs as one batch, so there is no padding and
    each answer is exactly what a single-prompt greedy decode gives (up to batched-matmul rounding).
    """
    newline = tokenizer.encode("\n")
    stop = {tokenizer.eos_token_id, *(newline if len(newline) == 1 else [])}
    encoded = [tokenizer.encode(p) for p in prompts]
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        groups.setdefault(len(ids), []).append(i)
    answers = [""] * len(prompts)
    for members in groups.values():
        ids = torch.tensor([encoded[i] for i in members])
        out = model(input_ids=ids, use_cache=True)
        new: list[list[int]] = [[] for _ in members]
        done = [False] * len(members)
        for _ in range(max_new):
            tokens = out.logits[:, -1].argmax(-1)
            for row, token in enumerate(tokens.tolist()):
                if not done[row]:
                    if token in stop:
                        done[row] = True
                    else:
                        new[row].append(token)
            if all(done):
                break
            cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
            out = model(input_ids=tokens[:, None], cache=cache, use_cache=True)
        for row, i in enumerate(members):
            answers[i] = tokenizer.decode(new[row])
    return answers


def task_accuracy(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast, settings: Settings
) -> dict[str, dict[str, Any]]:
    """Exact-match accuracy of greedy answers on held-out prompts (fresh strings, held-out numbers)."""
    tasks = Tasks(settings)
    rng = random.Random(settings.seed + 1)
    makers: dict[str, Callable[[], tuple[str, str]]] = {
        "copy": lambda: tasks.copy(rng, 24, low=8),
        "inc": lambda: tasks.inc(rng, held=True),
        "add": lambda: tasks.add(rng, held=True),
    }
    results: dict[str, dict[str, Any]] = {}
    for name, make in makers.items():
        pairs = [make() for _ in range(settings.eval_prompts)]
        longest = max(len(tokenizer.encode(answer)) for _, answer in pairs)
        got = greedy_batch(model, tokenizer, [prompt for prompt, _ in pairs], longest + 2)
        correct = sum(g == answer for g, (_, answer) in zip(got, pairs, strict=True))
        examples = [{"prompt": p, "answer": a, "got": g} for (p, a), g in zip(pairs[:5], got[:5], strict=True)]
        results[name] = {"accuracy": correct / settings.eval_prompts, "n": settings.eval_prompts, "examples": examples}
    return results


def heldout_rows(tokenizer: PreTrainedTokenizerFast, texts: list[str], context: int, rows: int) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        ids += [*tokenizer.encode(text), tokenizer.eos_token_id]
    n = min(rows, len(ids) // context)
    return torch.tensor(ids[: n * context]).view(n, context)


@torch.no_grad()
def layer_kl(model: PreTrainedModel, lens: TunedLens, ids: torch.Tensor) -> dict[str, list[float]]:
    """Mean KL(model output ‖ lens) in nats per layer, for the tuned lens and the logit lens."""
    adapter = ModelAdapter(model)
    hidden = adapter.hidden_states(ids)
    final = F.log_softmax(adapter.output_logits(hidden[-1]).float(), dim=-1)
    tuned, logit = [], []
    for layer in range(lens.num_layers):
        for out, h in ((tuned, lens(hidden[layer], layer)), (logit, hidden[layer])):
            logq = F.log_softmax(adapter.unembed(h).float(), dim=-1)
            out.append(round(float((final.exp() * (final - logq)).sum(-1).mean()), 4))
    return {"tuned": tuned, "logit": logit}


def lens_texts(settings: Settings, docs: list[str], count: int) -> list[str]:
    """Lens training texts: the training docs and task lines (train split), seeded."""
    tasks = Tasks(settings)
    rng = random.Random(settings.seed + 2)
    lines = ["".join(tasks.line(rng, 1.0) for _ in range(20)) for _ in range(count)]
    return docs + lines


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------- main


def file_hashes(out: Path) -> dict[str, str]:
    """sha256 of every weight file: what a rerun with the same settings must reproduce."""
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.suffix in (".safetensors", ".pt")
    }


def load(folder: Path) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def build(settings: Settings, out: Path, device: str = "cpu") -> dict[str, Any]:
    """Train the model and its lens into `out`, evaluate them, and write and return the report."""
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    begin = time.perf_counter()

    docs, held_docs = doc_texts(settings.seed, settings.heldout_share)
    tokenizer = make_tokenizer(docs, settings.vocab_size)
    model, training = train(settings, tokenizer, docs, out, device)
    save_fp16(model, tokenizer, out / "model")

    # Everything below uses the models as shipped: fp16 weights, run in float32 on the CPU.
    shipped, early = load(out / "model"), load(out / "early")
    lens_start = time.perf_counter()
    lenses = {
        name: train_lens(
            model,
            lens_texts(settings, docs, 200),
            tokenizer=tokenizer,
            steps=settings.lens_steps,
            tokens_per_step=settings.lens_tokens_per_step,
            max_length=settings.context,
            seed=settings.seed,
            out=out / f"{name}_lens",
            progress=False,
        )
        for name, model in (("model", shipped), ("early", early))
    }
    lens_seconds = time.perf_counter() - lens_start

    eval_start = time.perf_counter()
    accuracy = task_accuracy(shipped, tokenizer, settings)
    early_accuracy = task_accuracy(early, tokenizer, settings)
    held_tasks = Tasks(settings)
    rng = random.Random(settings.seed + 3)
    task_text = "".join(
        p + a + "\n" for p, a in (held_tasks.copy(rng, 24) if i % 2 else held_tasks.add(rng, True) for i in range(400))
    )
    held_rows = {
        "docs": heldout_rows(tokenizer, held_docs, settings.context, 64),
        "tasks": heldout_rows(tokenizer, [task_text], settings.context, 32),
    }
    kl = {part: layer_kl(shipped, lenses["model"], rows) for part, rows in held_rows.items()}
    early_kl = {part: layer_kl(early, lenses["early"], rows) for part, rows in held_rows.items()}
    sizes = {name: folder_bytes(out / name) for name in ("model", "early", "model_lens", "early_lens")}
    report = {
        "settings": asdict(settings),
        "parameters": sum(p.numel() for p in shipped.parameters()),
        "accuracy": {k: v["accuracy"] for k, v in accuracy.items()},
        "early_accuracy": {k: v["accuracy"] for k, v in early_accuracy.items()},
        "examples": {k: v["examples"] for k, v in accuracy.items()},
        "kl": kl,
        "early_kl": early_kl,
        "tuned_beats_logit_everywhere": all(
            t < g
            for table in (kl, early_kl)
            for part in table.values()
            for t, g in zip(part["tuned"], part["logit"], strict=True)
        ),
        "training": training,
        "seconds": {
            "model": training["seconds"],
            "lens": round(lens_seconds, 1),
            "eval": round(time.perf_counter() - eval_start, 1),
            "total": round(time.perf_counter() - begin, 1),
        },
        "bytes": {**sizes, "total": sum(sizes.values())},
        "sha256": file_hashes(out),
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps of the model")
    parser.add_argument("--lens-steps", type=int, default=defaults.lens_steps)
    parser.add_argument("--eval-prompts", type=int, default=defaults.eval_prompts, help="held-out prompts per task")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = Settings(seed=args.seed, steps=args.steps, eval_prompts=args.eval_prompts, lens_steps=args.lens_steps)
    report = build(settings, args.out, args.device)
    print(json.dumps({k: report[k] for k in ("accuracy", "early_accuracy", "kl", "seconds", "bytes")}, indent=2))


if __name__ == "__main__":
    main()
