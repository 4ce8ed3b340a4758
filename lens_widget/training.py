"""Training a tuned lens: each layer's translator learns to say what the model's own output says.

The recipe is tuned-lens's (arXiv 2303.08112), so that a lens trained here is comparable with the
lenses people already use: translator i reads `hidden_states[i]`, the lens decodes `h + A_i h + b_i`
through the model's own final norm and unembedding, and the loss is KL(model output ‖ lens) at the
same position, averaged over positions and layers. SGD with Nesterov momentum, weight decay, a
linear decay of the learning rate to 0 and gradient clipping; translators start at zero, where the
tuned lens is exactly the logit lens, so training can only move away from a known baseline.

The model is frozen and runs without grad, but not under `inference_mode` (its tensors could never
enter autograd); only the translators get gradients. Memory is bounded by `chunk_bytes` of float32
vocabulary-sized work: rows of a step and layers are processed in chunks, never layers × positions ×
vocabulary at once, which for a 128k vocabulary would be gigabytes per sequence.

Runs are reproducible: data order comes from `seed` alone, and on CPU the same seed and data give
bit-identical parameters. A checkpoint holds everything that decides the rest of the run (lens,
optimizer and scheduler state, step, RNG state, and a digest of the tokens used so far), so a resumed
run ends with the parameters an uninterrupted one would have had.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .adapter import ModelAdapter
from .checks import check_movable
from .distributed import all_sum, from_rank_0, share, world
from .errors import LensWidgetError
from .lenses import TunedLens

DEFAULT_STEPS = 100
"""Optimizer steps. tuned-lens trains 250 steps of 2^18 tokens on GPUs; 100 steps of 4096 tokens (about
400k tokens) get a small model most of the way on a CPU in minutes (see the README for a measurement)."""
DEFAULT_TOKENS_PER_STEP = 4096
"""Tokens per optimizer step (whole sequences are taken until a step holds at least this many)."""
DEFAULT_MAX_LENGTH = 512
"""Sequence length texts are packed into (tuned-lens: 2048); longer token sequences are cut into pieces."""
DEFAULT_CHECKPOINT_EVERY = 10
"""Steps between checkpoints, when a checkpoint folder is given (the last step is always saved)."""
TRAIN_CHUNK_BYTES = 256 * 2**20
"""Rough bound on the float32 vocabulary-sized working memory of one chunk (rows × layers × positions)."""
SHUFFLE_BUFFER = 256
"""Sequences held for seeded shuffling: the data is read lazily, so it is shuffled through a buffer."""
CHECKPOINT_FILE = "checkpoint.pt"
CHECKPOINT_FORMAT = 1

_TEXTS_NEED_TOKENIZER = "data holds texts: pass tokenizer= (the model's tokenizer) to tokenize them"


class TrainingError(LensWidgetError):
    """Training stopped on a NaN or infinite loss or gradient; nothing was saved from that step on."""


def train_lens(
    model: nn.Module | ModelAdapter,
    data: Iterable[Any],
    *,
    tokenizer: Any = None,
    lens: TunedLens | None = None,
    steps: int = DEFAULT_STEPS,
    tokens_per_step: int = DEFAULT_TOKENS_PER_STEP,
    lr: float = 1.0,
    momentum: float = 0.9,
    weight_decay: float = 1e-3,
    clip: float | None = 1.0,
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
    out: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    progress: bool = True,
    device: str | torch.device | None = None,
    chunk_bytes: int = TRAIN_CHUNK_BYTES,
) -> TunedLens:
    """Train a tuned lens for `model` on `data` and return it (float32, on the training device).

    data: texts (with `tokenizer=`: each is tokenized, ended with EOS, and the stream is packed into
        sequences of `max_length` tokens, as tuned-lens does) or token ids (a [batch, positions]
        tensor or list of lists, or one sequence; rows longer than `max_length` are cut). Read lazily
        and shuffled through a seeded buffer; when it runs out it is read again (a one-shot iterator
        is replayed from memory), so a small file trains for as many steps as asked.
    lens: a TunedLens to continue training (in place); default a new zero lens (= the logit lens).
    lr: tuned-lens's `lr_scale`, the effective step size: SGD gets lr · (1 − momentum), since Nesterov
        momentum multiplies steps by about 1 / (1 − momentum). It decays linearly to 0 over `steps`.
    clip: the largest gradient norm (None: no clipping).
    out: a folder to save the lens to (TunedLens.save, loadable by tuned-lens), when training ends.
    checkpoint: a folder; every `checkpoint_every` steps and at the end, the whole training state is
        saved there, and a later call with the same settings and data resumes from it.
    device: where to train; default the model's device. A model elsewhere is moved there for the run
        and moved back afterwards.
    chunk_bytes: rough bound on the float32 vocabulary-sized memory per chunk.

    Raises ValueError on bad arguments or data (an `out` or `checkpoint` that names a file or an
    unwritable place is refused before training), TrainingError on a NaN or infinite loss (then nothing
    is saved from that step: no `out` folder, no checkpoint; the lens keeps the previous step's values).

    Inside an initialised torch.distributed process group (torchrun), each process trains on its share
    of every step's sequences and the gradients are averaged (distributed.py); every process returns
    the same lens, and only rank 0 writes `out` and checkpoints.
    """
    settings = _check_arguments(
        steps=steps,
        tokens_per_step=tokens_per_step,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        clip=clip,
        seed=seed,
        max_length=max_length,
        checkpoint_every=checkpoint_every,
        chunk_bytes=chunk_bytes,
    )
    if isinstance(data, (str, bytes)):
        raise ValueError("data must be an iterable of texts or token batches, not a single string: pass [text]")
    if world()[0] == 0:  # only rank 0 writes
        for what, folder in (("out", out), ("checkpoint", checkpoint)):
            if folder is not None:
                check_writable_folder(folder, what)
    adapter = model if isinstance(model, ModelAdapter) else ModelAdapter(model)
    net = adapter.model
    home = adapter.device
    target = torch.device(device) if device is not None else home
    if target != home:
        check_movable(net, "the model", target)
    if lens is not None:
        lens.check_model(adapter)
    state_file = None if checkpoint is None else Path(checkpoint) / CHECKPOINT_FILE
    grad_flags = [p.requires_grad for p in net.parameters()]
    was_training = net.training
    rng_devices = [target] if target.type == "cuda" else []
    # Grad on even inside a caller's no_grad or inference_mode: the lens needs it, the model never gets it.
    with torch.inference_mode(False), torch.enable_grad():
        if lens is None:
            lens = TunedLens.from_model(adapter)
        settings["bias"] = lens.config.bias
        with adapter.unembedding() as weight:
            settings["model"] = _fingerprint(weight)  # refuses another model's checkpoint of this shape
        try:
            if target != home:
                net.to(target)
            net.requires_grad_(False)  # frozen: no gradient is computed for, or accumulates in, the model
            net.eval()
            lens.to(device=target, dtype=torch.float32)
            params = _trainable(lens)
            optimizer = torch.optim.SGD(
                params, lr=lr * (1 - momentum), momentum=momentum, nesterov=momentum > 0, weight_decay=weight_decay
            )
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, 1.0 - s / steps))
            stream = _DataStream(data, tokenizer, max_length, tokens_per_step, _input_vocab(adapter), seed)
            with torch.random.fork_rng(devices=rng_devices):
                # Only a model with randomness left in eval mode would draw from these; the caller's are restored.
                torch.default_generator.manual_seed(seed)
                if target.type == "cuda":
                    with torch.cuda.device(target):
                        torch.cuda.manual_seed(seed)
                saved = from_rank_0(lambda: _load_checkpoint(state_file, settings)) if state_file is not None else None
                start = 0
                if saved is not None:
                    start = _resume(saved, lens, optimizer, scheduler, stream, state_file, target)
                rank = world()[0]
                run = _Run(settings, state_file, checkpoint_every, chunk_bytes, progress and rank == 0, target, rank)
                _loop(adapter, lens, optimizer, scheduler, stream, start, run)
            lens.requires_grad_(False)
            if out is not None and rank == 0:
                lens.save(out)
            return lens
        finally:
            lens.requires_grad_(False)
            for p, flag in zip(net.parameters(), grad_flags, strict=True):
                p.requires_grad_(flag)
            net.train(was_training)
            if target != home:
                net.to(home)


def check_writable_folder(path: str | os.PathLike[str], what: str) -> None:
    """Refuse a folder that could not be written, before training: the paths are first written after
    the last step, so a file in the way would otherwise lose the whole run. Nothing is created here
    (a refused or failed run leaves no folder behind)."""
    folder = Path(path)
    shown = f"{what} {str(folder)!r}"
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{shown} is a file, not a folder: give a folder's path")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{shown} cannot be created: {str(existing)!r} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{shown} cannot be written: {str(existing)!r} is not writable by this user")


def _fingerprint(weight: torch.Tensor) -> str:
    """A short digest of the unembedding's shape, dtype and a strided sample of its values: cheap for any
    vocabulary (tuned-lens's unembed hash copies the whole matrix), and exact, unlike that hash."""
    rows, cols = weight.shape[0], weight.shape[-1]
    sample = weight.detach()[:: max(1, rows // 64), :: max(1, cols // 64)].to("cpu", torch.float32)
    digest = hashlib.sha256(f"{tuple(weight.shape)} {weight.dtype}".encode())
    digest.update(sample.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _trainable(lens: TunedLens) -> list[nn.Parameter]:
    """The lens's parameters, requiring grad. A lens built or loaded under inference_mode holds inference
    tensors, which SGD cannot update in place: those are replaced by ordinary copies first."""
    for translator in lens.layer_translators:
        for name, param in list(translator.named_parameters(recurse=False)):
            if param.is_inference():
                setattr(translator, name, nn.Parameter(param.detach().clone()))
    params = list(lens.parameters())
    for p in params:
        p.requires_grad_(True)
    return params


def _check_arguments(**values: Any) -> dict[str, Any]:
    """The run's settings, checked: each must be a number in its range, said plainly when not."""
    positive_ints = ("steps", "tokens_per_step", "max_length", "checkpoint_every", "chunk_bytes")
    for name in positive_ints:
        value = values[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not isinstance(values["seed"], int) or isinstance(values["seed"], bool):
        raise ValueError(f"seed must be an integer, got {values['seed']!r}")

    def number(name: str) -> float:
        value = values[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
        return float(value)

    if number("lr") <= 0:
        raise ValueError(f"lr must be positive, got {values['lr']!r}")
    if not 0 <= number("momentum") < 1:
        raise ValueError(f"momentum must be in [0, 1), got {values['momentum']!r}")
    if number("weight_decay") < 0:
        raise ValueError(f"weight_decay must be >= 0, got {values['weight_decay']!r}")
    if values["clip"] is not None and number("clip") <= 0:
        raise ValueError(f"clip must be positive (or None for no clipping), got {values['clip']!r}")
    settings = dict(values)
    # Neither changes what is learned (chunking only the order of float sums), so a resumed run may differ.
    del settings["checkpoint_every"], settings["chunk_bytes"]
    for name in ("lr", "momentum", "weight_decay"):
        settings[name] = float(settings[name])
    if settings["clip"] is not None:
        settings["clip"] = float(settings["clip"])
    return settings


def _input_vocab(adapter: ModelAdapter) -> int:
    embeddings = adapter.model.get_input_embeddings()
    return int(embeddings.weight.shape[0])


@dataclass(frozen=True)
class _Run:
    """How one call trains, besides the optimizer and the data."""

    settings: dict[str, Any]
    state_file: Path | None
    checkpoint_every: int
    chunk_bytes: int
    progress: bool
    device: torch.device
    rank: int
    """This process's rank (0 alone): only rank 0 writes."""


def _loop(
    adapter: ModelAdapter,
    lens: TunedLens,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stream: _DataStream,
    start: int,
    run: _Run,
) -> None:
    from tqdm.auto import tqdm  # imported here: `import lens_widget` stays light

    steps, clip = run.settings["steps"], run.settings["clip"]
    params = list(lens.parameters())
    losses = _Averaged(lens, run.device)
    saved = start if start and run.state_file is not None else None
    with tqdm(total=steps, initial=start, disable=not run.progress, desc="tuned lens", unit="step") as bar:
        for step in range(start, steps):
            sequences = stream.next_step()
            optimizer.zero_grad(set_to_none=True)
            layer_kl, model_ok = _accumulate(adapter, losses, sequences, run.chunk_bytes, run.device)
            loss = sum(layer_kl) / len(layer_kl)
            if not math.isfinite(loss):
                raise TrainingError(_diverged(run, step + 1, f"the loss is {loss}", layer_kl, model_ok, saved))
            norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else math.inf)
            if not bool(torch.isfinite(norm)):
                why = f"the loss is {loss:.4g} but the gradient norm is {float(norm)}"
                raise TrainingError(_diverged(run, step + 1, why, layer_kl, model_ok, saved))
            optimizer.step()
            scheduler.step()
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update(1)
            done = step + 1
            if run.state_file is not None and (done % run.checkpoint_every == 0 or done == steps):
                if run.rank == 0:
                    _save_checkpoint(run.state_file, done, run.settings, lens, optimizer, scheduler, stream, run.device)
                saved = done


class _Losses(nn.Module):
    """The KL of a chunk of layers, as one module call: what DistributedDataParallel wraps when several
    processes train (`_Averaged`). The model is no part of it (DDP would broadcast its weights)."""

    def __init__(self, lens: TunedLens) -> None:
        super().__init__()
        self.lens = lens

    def forward(
        self,
        adapter: ModelAdapter | None = None,
        hidden: torch.Tensor | None = None,
        layers: range = range(0),
        p: torch.Tensor | None = None,
        neg_entropy: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(the chunk's KL summed over its layers and positions, each layer's sum) for the model's
        output distribution `p` (and its negative entropy) and `hidden` [layers, batch, positions, d];
        with no chunk, the averaging call's zero (`_Averaged.average`)."""
        if adapter is None or hidden is None or p is None or neg_entropy is None:
            zero = torch.stack([param.sum() for param in self.lens.parameters()]).sum() * 0.0
            return zero, zero.detach()
        kls = []
        for layer in layers:
            translated = self.lens(hidden[layer].float(), layer)
            logits = adapter.decode(adapter.final_norm(translated.to(adapter.dtype))).float()
            logq = torch.log_softmax(logits, dim=-1)
            kls.append((neg_entropy - (p * logq).sum(-1)).sum())  # KL(model ‖ lens), summed over positions
        per_layer = torch.stack(kls)
        return per_layer.sum(), per_layer.detach()


class _Averaged:
    """The chunk losses, and with several processes their DistributedDataParallel wrapper: every chunk's
    backward runs unsynced (gradients accumulate in each process), and one call per step with no chunk,
    a zero that reads every translator, is the backward at which DDP averages all the gradients (a
    chunk reads some layers' translators only, and DDP would otherwise search the graph for the unused
    ones at every step)."""

    def __init__(self, lens: TunedLens, device: torch.device) -> None:
        self.losses = _Losses(lens)
        self.ddp: nn.Module | None = None
        if world()[1] > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [device] if device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.losses, device_ids=ids)

    def __call__(self, *chunk: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return (self.losses if self.ddp is None else self.ddp)(*chunk)

    def unsynced(self) -> AbstractContextManager[Any]:
        """A chunk's backward: gradients accumulate in this process only."""
        return nullcontext() if self.ddp is None else self.ddp.no_sync()  # type: ignore[operator]

    def average(self) -> None:
        """The step's averaging backward (with several processes; nothing alone)."""
        if self.ddp is not None:
            self.ddp()[0].backward()


def _accumulate(
    adapter: ModelAdapter, losses: _Averaged, sequences: list[torch.Tensor], chunk_bytes: int, device: torch.device
) -> tuple[list[float], bool]:
    """Backpropagate one step's loss into the lens; each layer's mean KL, and whether the model's own
    output was finite (a NaN there is the model's fault, not the lens's, and the error says so).
    With several processes, this one's share of the step (distributed.share), summed across them."""
    layers, vocab = adapter.num_layers, adapter.vocab_size
    positions = sum(len(s) for s in sequences)
    rank, size = world()
    sequences = share(sequences, rank, size)
    # The gradient is that of the sum over layers of each layer's mean KL, as in tuned-lens, so that its
    # lr and clipping carry over (the translators are independent: the minimum is the same as the mean's).
    # DDP averages over processes: each scales by their number, so the average is the whole step's.
    scale = size / positions
    sums = torch.zeros(layers, dtype=torch.float64, device=device)
    model_bad = torch.zeros((), dtype=torch.float64, device=device)
    by_length: dict[int, list[torch.Tensor]] = {}
    for seq in sequences:  # equal lengths stack without padding (packed texts all have max_length)
        by_length.setdefault(len(seq), []).append(seq)
    batches = []
    for length, group in by_length.items():
        rows = max(1, chunk_bytes // (4 * 4 * length * vocab))  # p of the rows, plus a layer's working copies
        batches += [torch.stack(group[first : first + rows]) for first in range(0, len(group), rows)]
    with adapter.head_in_place():  # an offloaded head brought in once per step, not once per layer chunk
        for batch in batches:
            ids = batch.to(device)
            hidden = adapter.hidden_states(ids)
            with torch.no_grad():
                model_logp = torch.log_softmax(adapter.output_logits(hidden[layers]).float(), dim=-1)
                p = model_logp.exp()
                neg_entropy = torch.where(p == 0, 0.0, p * model_logp).sum(-1)
                del model_logp
                model_bad += (~torch.isfinite(neg_entropy).all()).double()
            per_chunk = max(1, chunk_bytes // (3 * 4 * ids.numel() * vocab))
            for low in range(0, layers, per_chunk):
                chunk = range(low, min(layers, low + per_chunk))
                with losses.unsynced():
                    total, per_layer = losses(adapter, hidden, chunk, p, neg_entropy)
                    sums[chunk.start : chunk.stop] += per_layer.double()
                    (total * scale).backward()
    losses.average()
    all_sum(sums)
    return (sums / positions).tolist(), not bool(all_sum(model_bad) > 0)


def _diverged(run: _Run, step: int, why: str, layer_kl: list[float], model_ok: bool, saved: int | None) -> str:
    """What went wrong, where, and what to try: a NaN has different causes in the model and the lens."""
    steps, lr = run.settings["steps"], run.settings["lr"]
    if not model_ok:
        cause = (
            "The model's own output is NaN or infinite on this step's data, so the fault is the model's, not "
            "the lens's: check its weights for NaN, or load it in float32 if float16/bfloat16 overflows"
        )
    else:
        bad = [i for i, v in enumerate(layer_kl) if not math.isfinite(v)]
        where = f" at layers {bad}" if bad else ""
        cause = (
            f"The lens diverged{where}: try a smaller lr (this run's: {lr:g}; e.g. lr={lr / 4:g}) or a smaller "
            "clip, or load the model in float32 if it is in float16/bfloat16"
        )
    kept = "" if saved is None else f"; the checkpoint of step {saved} in {run.state_file} is intact"
    return (
        f"tuned lens training stopped at step {step} of {steps}: {why}. {cause}. Nothing was saved from this "
        f"step (no output folder, no checkpoint){kept}; the lens holds its values after step {step - 1}."
    )


class _DataStream:
    """Token sequences for each step, read lazily from the data, shuffled through a seeded buffer, cycled.

    Deterministic given the data and the seed, which is what resuming relies on: the stream is replayed
    up to the checkpoint's step (without running the model), and the digest of the tokens replayed
    must equal the one the checkpoint recorded.
    """

    def __init__(
        self, data: Iterable[Any], tokenizer: Any, max_length: int, tokens_per_step: int, vocab: int, seed: int
    ) -> None:
        self._data = data
        self._tokenizer = tokenizer
        self._max_length = max_length
        self._tokens_per_step = tokens_per_step
        self._vocab = vocab
        self._one_shot = iter(data) is data
        self._generator = torch.Generator().manual_seed(seed)
        self._sequences = self._shuffled()
        self.digest = hashlib.sha256()
        self.steps_read = 0

    def next_step(self) -> list[torch.Tensor]:
        """Whole sequences until the step holds at least `tokens_per_step` tokens."""
        taken: list[torch.Tensor] = []
        count = 0
        while count < self._tokens_per_step:
            seq = next(self._sequences)
            taken.append(seq)
            count += len(seq)
            self.digest.update(len(seq).to_bytes(8, "little"))
            self.digest.update(seq.numpy().tobytes())
        self.steps_read += 1
        return taken

    def generator_state(self) -> torch.Tensor:
        return self._generator.get_state()

    def _shuffled(self) -> Iterator[torch.Tensor]:
        buffer: list[torch.Tensor] = []
        for seq in self._cycled():
            if len(buffer) < SHUFFLE_BUFFER:
                buffer.append(seq)
                continue
            j = int(torch.randint(len(buffer), (1,), generator=self._generator))
            yield buffer[j]
            buffer[j] = seq

    def _cycled(self) -> Iterator[torch.Tensor]:
        cache: list[torch.Tensor] | None = [] if self._one_shot else None
        first = True
        while True:
            source = self._read() if first or cache is None else iter(cache)
            count = 0
            for seq in source:
                if first and cache is not None:
                    cache.append(seq)
                count += 1
                yield seq
            if count == 0:
                raise ValueError("data holds no tokens: give at least one non-empty text or token sequence")
            first = False

    def _read(self) -> Iterator[torch.Tensor]:
        """Sequences of at most max_length tokens: texts packed (tuned-lens's way), token rows cut."""
        length = self._max_length
        packed: list[int] = []
        for item in self._data:
            if isinstance(item, str):
                packed.extend(self._tokenize(item))
                while len(packed) >= length:
                    yield torch.tensor(packed[:length], dtype=torch.long)
                    del packed[:length]
                continue
            for row in self._rows(item):
                for low in range(0, len(row), length):
                    yield row[low : low + length]
        if packed:
            yield torch.tensor(packed, dtype=torch.long)

    def _tokenize(self, text: str) -> list[int]:
        if self._tokenizer is None:
            raise ValueError(_TEXTS_NEED_TOKENIZER)
        if not text.strip():
            return []
        ids = list(self._tokenizer(text, verbose=False)["input_ids"])
        eos = getattr(self._tokenizer, "eos_token_id", None)
        if isinstance(eos, int) and (not ids or ids[-1] != eos):
            ids.append(eos)  # documents are separated by EOS in the packed stream, as in tuned-lens
        self._check_ids(torch.tensor(ids, dtype=torch.long))
        return ids

    def _rows(self, item: Any) -> list[torch.Tensor]:
        if isinstance(item, (list, tuple)) and item and not isinstance(item[0], (int, torch.Tensor)):
            rows = [self._as_ids(row) for row in item]  # a list of lists may be ragged
        else:
            batch = self._as_ids(item)
            if batch.ndim == 0:
                raise ValueError(f"data: a token item must be a sequence or a [batch, positions] batch, got {item!r}")
            rows = [batch] if batch.ndim == 1 else list(batch)
        for row in rows:
            if row.ndim != 1:
                shape = tuple(row.shape)
                raise ValueError(f"data: token batches must be [batch, positions], got a row of shape {shape}")
            self._check_ids(row)
        return [row for row in rows if len(row)]

    def _as_ids(self, value: Any) -> torch.Tensor:
        try:
            tensor = torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(
                f"data: expected texts or token ids, got {type(value).__name__} ({exc}); "
                "token batches are [batch, positions] tensors or lists of lists of ints"
            ) from exc
        if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(f"data: token ids must be integers, got dtype {tensor.dtype}")
        return tensor.to("cpu", torch.long)

    def _check_ids(self, ids: torch.Tensor) -> None:
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self._vocab):
            bad = int(ids.min()) if int(ids.min()) < 0 else int(ids.max())
            raise ValueError(f"data: token id {bad} is outside the model's vocabulary 0..{self._vocab - 1}")


def _save_checkpoint(
    path: Path,
    step: int,
    settings: dict[str, Any],
    lens: TunedLens,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stream: _DataStream,
    device: torch.device,
) -> None:
    """Everything that decides the rest of the run, written atomically (a crash mid-write keeps the old one)."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "settings": dict(settings),
        "lens": {k: v.detach().to("cpu").clone() for k, v in lens.layer_translators.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "data_rng": stream.generator_state(),
        "data_digest": stream.digest.hexdigest(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, path)


def _load_checkpoint(path: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The checkpoint's state, if there is one, refused when it was written with other settings."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path} is not a lens training checkpoint that loads ({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a lens training checkpoint of format {CHECKPOINT_FORMAT}")
    ours, theirs = settings, state["settings"]
    differ = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
    if differ:
        said = ", ".join(f"{k}={theirs.get(k)!r} there, {ours.get(k)!r} now" for k in differ)
        raise ValueError(
            f"the checkpoint in {path.parent} was written with other settings ({said}); resume with the same "
            "settings, or give another checkpoint folder to start a new run (to train an existing lens further, "
            "pass it as lens=)"
        )
    return state


def _resume(
    state: dict[str, Any],
    lens: TunedLens,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    stream: _DataStream,
    path: Path,
    device: torch.device,
) -> int:
    """Restore the run at the checkpoint's step; the data stream is replayed to the same place and checked."""
    step = int(state["step"])
    with torch.no_grad():
        lens.layer_translators.load_state_dict(state["lens"], strict=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    for _ in range(step):
        stream.next_step()
    if stream.digest.hexdigest() != state["data_digest"] or not torch.equal(
        stream.generator_state(), state["data_rng"]
    ):
        raise ValueError(
            f"the checkpoint in {path.parent} was trained on other data: the first {step} steps' tokens differ "
            "from this data's; resume with the same data (and tokenizer), or give another checkpoint folder"
        )
    torch.set_rng_state(state["rng"])
    if state.get("cuda_rng") is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    return step
