"""A thin model adapter: what turns a residual-stream vector into next-token logits.

Every lens decodes through the model's own final norm and unembedding, so those must be found for
any Hugging Face causal LM. Rather than a table of classes (which rots with each transformers
release), the adapter *discovers* them: one tiny forward pass records which modules run between the
last transformer block and the output embedding, and the chain found is then replayed and checked
against what the model itself fed its head. A model that cannot be verified is refused with an
error naming its class, never decoded silently wrong.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .errors import AdapterError
from .logit_transform import LOGIT_ATTRS, LogitTransform
from .placement import (
    aligns_devices_only,
    check_loaded,
    execution_device,
    input_device,
    is_offloaded,
    is_transparent_forward,
    loaded,
    loaded_weight,
    unwrap,
)


def _first_tensor(value: Any) -> torch.Tensor | None:
    """Blocks return tensors, tuples or ModelOutputs; the residual stream is the first tensor."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape:
        return False
    b = b.to(a.device)  # a model split over devices hands each module's output on its own device
    # The replayed chain runs the same kernels on the same inputs: only reduced precision slack. A NaN
    # weight gives NaN in the same places both ways: that is a broken model (whose cells the grid marks
    # invalid), not a layout the adapter failed to find.
    tol = 1e-4 if a.dtype in (torch.float32, torch.float64) else 2e-2
    return bool(torch.allclose(a.float(), b.float(), rtol=tol, atol=tol, equal_nan=True))


@dataclass(frozen=True)
class ModelForward:
    """What a forward pass yields for the lens: every hidden state of a run of positions."""

    hidden: torch.Tensor
    """[num_layers + 1, positions, d_model]: hidden_states[i]; row i < L is read by the lens, row L
    (already final-normed by transformers in every tested family) gives the model's own output.
    A session with sub-layer rows appends L more, the residual stream after each block's attention
    (rows.py: row L + ℓ is after block ℓ - 1's)."""


class ModelAdapter:
    """Final norm, unembedding and hidden-state layout of one causal LM, found and verified."""

    model: nn.Module
    num_layers: int
    d_model: int
    vocab_size: int
    layers_name: str
    final_norm_names: tuple[str, ...]
    head_name: str
    logit_transform: LogitTransform
    block_devices: tuple[torch.device, ...]
    last_hidden_is_normed: bool

    def __init__(self, model: nn.Module) -> None:
        model = unwrap(model)  # an nnsight model: the transformers model inside
        self.model = model
        check_loaded(model, "the model")
        self._cast_head: tuple[tuple[Any, ...], torch.Tensor] | None = None
        self._in_place = False
        self._cls = type(model).__name__
        config = getattr(model, "config", None)
        if config is None:
            raise AdapterError(f"{self._cls} has no `config`: lens-widget needs a Hugging Face causal LM.")
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        get_head = getattr(model, "get_output_embeddings", None)
        head = get_head() if callable(get_head) else None
        if not isinstance(head, nn.Module) or not isinstance(getattr(head, "weight", None), torch.Tensor):
            raise AdapterError(
                f"{self._cls}: get_output_embeddings() returned {type(head).__name__}, not an unembedding "
                "module with a weight; load the model with AutoModelForCausalLM."
            )
        self.head = head
        self.head_name = _name_of(model, head)
        num_layers = getattr(text_config, "num_hidden_layers", None)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise AdapterError(f"{self._cls}: config has no positive num_hidden_layers.")
        self.num_layers = num_layers
        self.layers_name, self._blocks = _find_blocks(model, num_layers, self._cls)
        base = getattr(model, "base_model", model)
        self._body: nn.Module = base if isinstance(base, nn.Module) else model
        self.vocab_size = int(head.weight.shape[0])
        self.logit_transform = LogitTransform.from_config(text_config)
        chain, normed, d_model, device, block_devices = self._discover()
        self._device = device
        self.block_devices = block_devices
        """Where each block's output came from at discovery (accelerate may place blocks on several)."""
        self._final = chain
        self.final_norm_names = tuple(_name_of(model, m) for m in chain)
        self.last_hidden_is_normed = normed
        self.d_model = d_model

    @property
    def device(self) -> torch.device:
        """Where the head computes: the lens and every lens row's work run there, whatever devices the
        model's layers (dispatched by accelerate) or its offloaded weights are on. Its hook's or weight's
        device, read now (the model may have been moved since), else where discovery saw it compute."""
        return execution_device(self.head) or self._device

    @property
    def dtype(self) -> torch.dtype:
        return self.head.weight.dtype

    @contextmanager
    def head_in_place(self) -> Iterator[None]:
        """An offloaded head's weight brought in once for a whole computation, and its GEMM run on it
        directly: called as the module, its hook would bring the whole unembedding matrix in from the
        CPU or disk for every chunk. Nothing for a head that is not offloaded."""
        if self._in_place or not is_offloaded(self.head):
            yield
            return
        with loaded(self.head):
            self._in_place = True
            try:
                yield
            finally:
                self._in_place = False
                self._cast_head = None  # a converted copy of the brought-in weight: released with it

    def unembedding(self) -> AbstractContextManager[torch.Tensor]:
        """The head's real weight for the duration (an offloaded head's is brought in, then released):
        what fingerprints read, where `head.weight` may be an empty meta tensor."""
        return loaded_weight(self.head)

    def final_norm(self, h: torch.Tensor) -> torch.Tensor:
        """The modules the model runs between its last block and its head, replayed on `h`."""
        for module in self._final:
            out = _first_tensor(module(h))
            assert out is not None
            h = out
        return h

    def unembed(self, h: torch.Tensor) -> torch.Tensor:
        """Logits the model would give if `h` were its last block's output (final norm included)."""
        return self.decode(self.final_norm(h))

    def head_input(self, final_hidden: torch.Tensor) -> torch.Tensor:
        """What the head reads for the model's own output, from hidden_states[L] in either layout."""
        return final_hidden if self.last_hidden_is_normed else self.final_norm(final_hidden)

    def decode(
        self, head_input: torch.Tensor, out: torch.Tensor | None = None, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """Logits from final-normed vectors: the head plus the model's logit post-processing.

        out: a float32 tensor of the logits' shape to write them into (the lens grid reuses one
          buffer chunk after chunk, rather than the allocator handing it fresh pages each time).
        dtype: the head GEMM's precision, the head weight's by default: bfloat16 on an accelerator
          runs several times faster, accumulated into float32 logits where the device can.
        A head that is not a plain nn.Linear (or has hooks) is always called as the module, and so is
        an offloaded one outside `head_in_place` (accelerate's hook brings its weight in for each call).
        """
        if out is None and dtype is None and not self._in_place:  # in place: its hook would release the weight
            return self.logit_transform(self.head(head_input))
        linear = self._plain_linear()
        if linear is None:  # the module runs in its own dtype: a precision asked for cannot apply to it
            logits = self.logit_transform(self.head(head_input))
            return logits if out is None else out.copy_(logits)
        weight, bias = linear
        dtype = weight.dtype if dtype is None else dtype
        x, w = head_input.to(weight.device, dtype), self._weight_in(weight, dtype)
        flat_x = x.reshape(-1, x.shape[-1])
        if out is None:
            logits = torch.mm(flat_x, w.T)
            if bias is not None:
                logits += bias.to(dtype)
            return self.logit_transform(logits.reshape(*x.shape[:-1], -1))
        if not out.is_contiguous():
            out.copy_(
                self.decode(head_input, out=torch.empty(out.shape, dtype=out.dtype, device=out.device), dtype=dtype)
            )
            return out
        flat = out.view(-1, out.shape[-1])
        if out.dtype == dtype:
            torch.mm(flat_x, w.T, out=flat)
        else:
            flat.copy_(_mm_accumulated(flat_x, w.T, out.dtype))
        if bias is not None:
            flat += bias
        return self.logit_transform.apply_(out)

    def decode_ids(self, head_input: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """float32 logits [..., len(ids)] of only the tokens `ids`: a [..., d] × [d, len(ids)] product
        (a pinned item's logits need no other row of the head). A head that is not a plain linear
        layer is run whole and the columns taken from its output."""
        linear = self._plain_linear()
        if linear is None:
            return self.decode(head_input).float().index_select(-1, ids.to(head_input.device))
        weight, bias = linear
        rows = weight.index_select(0, ids.to(weight.device))
        logits = head_input.to(weight.device, weight.dtype) @ rows.T
        if bias is not None:
            logits = logits + bias.index_select(0, ids.to(bias.device))
        return self.logit_transform(logits.float())

    @property
    def plain_head(self) -> bool:
        """Whether `decode` computes the head as one GEMM of its weight (rather than calling the module,
        as for a custom head or one with hooks, which see the input exactly as the grid shapes it)."""
        return self._plain_linear() is not None

    def _plain_linear(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The head's weight and bias when calling it is exactly F.linear with them (no subclass
        forward, no hooks that could change what it computes or count its calls)."""
        head = self.head
        # accelerate's hook replaces the instance's forward to move inputs to the head's device (done
        # here too) and, when offloaded, to bring its weight in (then the module must be called);
        # nnsight's runs the class's forward outside a trace.
        transparent = aligns_devices_only(head) or is_transparent_forward(head) or self._in_place
        wrapped = "forward" in vars(head) and not transparent
        plain = isinstance(head, nn.Linear) and type(head).forward is nn.Linear.forward and not wrapped
        hooked = head._forward_hooks or head._forward_pre_hooks or _global_hooks()
        return (head.weight, head.bias) if plain and not hooked else None

    def _weight_in(self, weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The head weight in `dtype`, converted once and kept while the weight is unchanged (a copy per
        chunk would add the whole unembedding matrix to every chunk's memory)."""
        if weight.dtype == dtype:
            return weight
        key = (dtype, weight.data_ptr(), weight._version, tuple(weight.shape), weight.device)
        cached = self._cast_head
        if cached is None or cached[0] != key:
            cached = (key, weight.detach().to(dtype))
            self._cast_head = cached
        return cached[1]

    def output_logits(self, final_hidden: torch.Tensor) -> torch.Tensor:
        """The model's own logits from hidden_states[L], whichever layout the family uses."""
        return self.decode(self.head_input(final_hidden))

    @torch.inference_mode()
    def run(
        self, input_ids: torch.Tensor, cache: Any = None, store: torch.device | None = None
    ) -> tuple[torch.Tensor, Any]:
        """Hidden states [L + 1, new positions, d] of `input_ids` continuing `cache`, and the cache.

        Runs the base model, skipping the head: the output row is decoded by the lens grid, in
        chunks, instead of materialising the model's positions × vocabulary logits here.
        store: where the hidden states are kept (the head's device by default). Each layer's come from
        that layer's device, [positions, d] at a time.
        """
        if input_ids.ndim != 1:
            raise ValueError(f"input_ids must be one sequence (1-D), got shape {tuple(input_ids.shape)}")
        ids = input_ids.to(input_device(self.model))[None]
        out = self._body(input_ids=ids, cache=cache, use_cache=True, output_hidden_states=True)
        store = self.device if store is None else store
        hidden = torch.stack([h[0].to(store) for h in out.hidden_states])
        return hidden, getattr(out, "cache", None)

    def forward(self, input_ids: torch.Tensor) -> ModelForward:
        """One full forward pass of a single sequence, shaped for the lens."""
        return ModelForward(self.run(input_ids)[0])

    @torch.no_grad()
    def hidden_states(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Hidden states [L + 1, batch, positions, d] of a batch of equal-length sequences [batch, positions].

        Under `no_grad`, not `inference_mode` (which `run` uses): tensors made in inference mode can
        never enter autograd, and lens training backpropagates from the lens's logits through the
        final norm and head into the translators that read these tensors. No gradient reaches the
        model through them either way.
        """
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be a batch [batch, positions] (2-D), got shape {tuple(input_ids.shape)}")
        ids = input_ids.to(input_device(self.model))
        # Every position is real (sequences are never padded): said explicitly, so that a batch holding
        # the pad token (often EOS, which separates packed documents) is not taken for padding.
        mask = torch.ones_like(ids)
        out = self._body(input_ids=ids, attention_mask=mask, use_cache=False, output_hidden_states=True)
        return torch.stack([h.to(self.device) for h in out.hidden_states])

    def _discover(self) -> tuple[tuple[nn.Module, ...], bool, int, torch.device, tuple[torch.device, ...]]:
        """Run the model once on a few tokens, watching which modules run in which order."""
        model, blocks, head = self.model, self._blocks, self.head
        events: list[tuple[str, nn.Module]] = []
        block_out: dict[int, torch.Tensor] = {}
        seen: dict[str, torch.Tensor] = {}

        def head_in(module: nn.Module, args: Any) -> None:
            seen["head_in"] = args[0]

        def head_out(module: nn.Module, args: Any, output: Any) -> None:
            seen["head_out"] = output

        handles = record_calls(model, blocks, events)
        handles.append(head.register_forward_pre_hook(head_in))
        handles.append(head.register_forward_hook(head_out))
        for i, block in enumerate(blocks):
            handles.append(block.register_forward_hook(_recorder(block_out, i)))
        ids = (torch.arange(1, 6, device=input_device(model)) % self.vocab_size)[None]
        try:
            with torch.inference_mode():
                out = model(input_ids=ids, output_hidden_states=True, use_cache=False)
        except Exception as exc:
            quantized = _quantized_by_bitsandbytes(model)
            if quantized and any("bitsandbytes" in frame.filename for frame in traceback.extract_tb(exc.__traceback__)):
                where = input_device(model)
                raise AdapterError(
                    f"{self._cls} is quantized with bitsandbytes ({quantized}), whose kernels failed on {where}: "
                    f"{exc!r}. bitsandbytes runs on CUDA GPUs, and on CPUs only for some layer shapes and versions: "
                    "load the model on a GPU, or without quantization_config (in float16 or bfloat16 to save memory)"
                ) from exc
            raise AdapterError(f"{self._cls}: a probe forward pass on 5 tokens failed: {exc!r}") from exc
        finally:
            for handle in handles:
                handle.remove()

        last = self.num_layers - 1
        if "head_in" not in seen or last not in block_out:
            raise AdapterError(
                f"{self._cls}: the probe pass did not run both the blocks in `{self.layers_name}` and the "
                f"output embedding `{self.head_name}`."
            )
        chain = _modules_between(events, blocks[last], head)
        x = block_out[last]
        try:
            with torch.inference_mode():
                for module in chain:
                    y = _first_tensor(module(x))
                    if y is None:
                        raise TypeError(f"{type(module).__name__} returned no tensor")
                    x = y
        except Exception as exc:
            raise AdapterError(
                f"{self._cls}: could not replay the final norm ({', '.join(_name_of(model, m) for m in chain)}) "
                f"on the last block's output: {exc!r}"
            ) from exc
        if not _close(x, seen["head_in"]):
            names = ", ".join(_name_of(model, m) for m in chain) or "nothing"
            raise AdapterError(
                f"{self._cls}: looked for the final norm as the modules run between the last block "
                f"`{self.layers_name}.{last}` and the output embedding `{self.head_name}` (found: {names}), "
                "but replaying them does not reproduce the head's input."
            )
        logits = _first_tensor(out.logits) if hasattr(out, "logits") else None
        if logits is None or not _close(self.logit_transform(seen["head_out"]), logits):
            raise AdapterError(
                f"{self._cls}: the model post-processes its head's output in a way lens-widget does not "
                f"reproduce (it knows config.{', config.'.join(LOGIT_ATTRS)})."
            )
        hidden_states = getattr(out, "hidden_states", None)
        if hidden_states is None or len(hidden_states) != self.num_layers + 1:
            got = "none" if hidden_states is None else len(hidden_states)
            raise AdapterError(
                f"{self._cls}: expected num_hidden_layers + 1 = {self.num_layers + 1} hidden states, got {got}."
            )
        for i in range(1, self.num_layers):
            if not _close(hidden_states[i], block_out[i - 1]):
                raise AdapterError(f"{self._cls}: hidden_states[{i}] is not the output of block {i - 1}.")
        normed = _close(hidden_states[-1], seen["head_in"])
        if not normed and not _close(hidden_states[-1], block_out[last]):
            raise AdapterError(
                f"{self._cls}: hidden_states[-1] is neither the last block's output nor the head's input."
            )
        head_out = _first_tensor(seen["head_out"])
        assert head_out is not None
        devices = tuple(block_out[i].device for i in range(self.num_layers))
        return tuple(chain), normed, int(block_out[last].shape[-1]), head_out.device, devices


def _quantized_by_bitsandbytes(model: nn.Module) -> str:
    """The bitsandbytes layer classes in the model ("" when none)."""
    names = {type(m).__name__ for m in model.modules() if type(m).__module__.startswith("bitsandbytes.")}
    return ", ".join(sorted(names))


def _global_hooks() -> bool:
    """Whether forward hooks registered for every module (nn.modules.module's globals) exist."""
    from torch.nn.modules import module

    names = ("_global_forward_hooks", "_global_forward_pre_hooks")
    return any(bool(getattr(module, name, None)) for name in names)


_OUT_DTYPE_MM: dict[str, bool] = {}
"""Per device type: whether torch.mm takes out_dtype (a half-precision GEMM accumulated into float32
logits, CUDA in recent torch); found by trying once."""


def _mm_accumulated(x: torch.Tensor, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x @ w in their (half) precision, the result in `dtype`: accumulated and written in it where the
    device's GEMM can, else rounded to the inputs' precision first and converted."""
    kind = x.device.type
    if _OUT_DTYPE_MM.get(kind, True):
        try:
            result = torch.mm(x, w, out_dtype=dtype)  # type: ignore[call-arg]
            _OUT_DTYPE_MM[kind] = True
            return result
        except (RuntimeError, TypeError, NotImplementedError):
            _OUT_DTYPE_MM[kind] = False
    return torch.mm(x, w)


def record_calls(model: nn.Module, blocks: nn.ModuleList, events: list[tuple[str, nn.Module]]) -> list[RemovableHandle]:
    """Hooks that log ("start" | "end", module) in call order, what `_modules_between` reads: on every
    module but those inside the blocks (irrelevant there, where hooks would only cost time)."""
    inside = {id(m) for m in blocks.modules()}
    handles = []
    for module in model.modules():
        if id(module) in inside and module not in blocks:
            continue
        handles.append(module.register_forward_pre_hook(lambda m, args: events.append(("start", m))))
        handles.append(module.register_forward_hook(lambda m, args, out: events.append(("end", m))))
    return handles


def _recorder(store: dict[int, torch.Tensor], index: int) -> Any:
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        tensor = _first_tensor(output)
        if tensor is not None:
            store[index] = tensor

    return hook


def _modules_between(events: list[tuple[str, nn.Module]], block: nn.Module, head: nn.Module) -> list[nn.Module]:
    """Outermost modules that start after `block` ends and end before `head` starts, in call order."""
    end_block = max(i for i, (kind, m) in enumerate(events) if kind == "end" and m is block)
    start_head = max(i for i, (kind, m) in enumerate(events) if kind == "start" and m is head)
    chain: list[nn.Module] = []
    depth = 0
    open_modules: list[nn.Module] = []
    for kind, module in events[end_block + 1 : start_head]:
        if kind == "start":
            if depth == 0:
                chain.append(module)
            open_modules.append(module)
            depth += 1
        elif open_modules and open_modules[-1] is module:
            open_modules.pop()
            depth -= 1
        # An "end" without its "start" here closes an ancestor of the block (the base model): skip it.
    return chain


def _find_blocks(model: nn.Module, num_layers: int, cls: str) -> tuple[str, nn.ModuleList]:
    """The transformer block stack: the ModuleList of num_hidden_layers modules holding the weights."""
    candidates = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) == num_layers
    ]
    if not candidates:
        raise AdapterError(f"{cls}: found no ModuleList of num_hidden_layers = {num_layers} transformer blocks.")
    return max(candidates, key=lambda item: sum(p.numel() for p in item[1].parameters()))


def _name_of(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name or "<model>"
    return type(target).__name__
