"""What each transformer block adds to the residual stream, found by watching it run.

Sub-layer rows and direct logit attribution both need, per block, the tensor its attention adds to
the residual stream, the one its MLP adds, and the attention's output projection (whose input holds
one slice per head). As for the final norm (adapter.py), no table of families: one probe pass records
the calls of each block's direct children, and the layout is whatever makes the arithmetic hold,

    out = in + attention + mlp      (two children's outputs: GPT-2, Llama, NeoX, Gemma-2's post-norms)
    mid = attention child's output, out = mlp child's output   (children that add the residual: Bloom)

with the earliest pair of calls that reproduces the block's output. The attention is the writer, or
(when the writer is a norm with no projection inside, as Gemma-2's post-attention norm) the child
whose output the writer read; its output projection is the last linear layer it calls, checked to
give (through the writer) what the block adds. A block that fits neither is refused, naming it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .adapter import ModelAdapter, _close, _first_tensor
from .errors import AdapterError
from .placement import input_device


@dataclass(frozen=True)
class BlockParts:
    """The modules through which one block writes to the residual stream."""

    attention: nn.Module
    """The attention module (the one holding the output projection)."""
    out_proj: nn.Module
    """The attention's output projection: its input is [..., heads × head_dim], one slice per head."""
    attention_writer: nn.Module
    """The module whose output the block adds for its attention: `attention` itself, or a norm after
    it (Gemma-2, OLMo-2), whose scale attribution freezes at the attention's output."""
    mlp_writer: nn.Module
    """The module whose output the block adds for its MLP (the MLP, a norm after it, or OPT's fc2)."""
    adds_residual: bool
    """Whether the writers' outputs already include the residual (Bloom): the attention's share is
    then the writer's output minus the block's input, the MLP's its output minus that."""
    parallel: bool
    """Whether attention and MLP read the same input (GPT-J, NeoX, Falcon, Phi): the row "after
    attention" is then the block's input plus the attention's output, which no later part reads."""


class BlockLayout:
    """Every block's parts, found on a probe pass and verified there."""

    def __init__(self, adapter: ModelAdapter) -> None:
        self.adapter = adapter
        config = adapter.model.config
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = getattr(text, "num_attention_heads", None)
        if not isinstance(heads, int) or heads < 1:
            raise AdapterError(f"{adapter._cls}: config has no positive num_attention_heads")
        self.num_heads = heads
        self.parts: tuple[BlockParts, ...] = self._discover()

    @property
    def parallel(self) -> bool:
        return any(p.parallel for p in self.parts)

    def _discover(self) -> tuple[BlockParts, ...]:
        adapter = self.adapter
        blocks = adapter._blocks
        records: list[_Record] = [_Record() for _ in blocks]
        handles = []
        for record, block in zip(records, blocks, strict=True):
            handles += record.watch(block)
        ids = (torch.arange(1, 6, device=input_device(adapter.model)) % adapter.vocab_size)[None]
        try:
            with torch.inference_mode():
                adapter.model(input_ids=ids, use_cache=False)
        finally:
            for handle in handles:
                handle.remove()
        return tuple(self._parts(i, record) for i, record in enumerate(records))

    def _parts(self, index: int, record: _Record) -> BlockParts:
        name = f"{self.adapter._cls} block {self.adapter.layers_name}.{index}"
        if record.input is None or record.output is None:
            raise AdapterError(f"{name}: the probe pass saw no input or output tensor")
        found = _additive(record) or _residual_included(record)
        if found is None:
            raise AdapterError(
                f"{name}: found no two of its parts ({', '.join(record.names())}) whose outputs, added to its "
                "input, give its output; lens-widget cannot split it into attention and MLP"
            )
        i, j, adds = found
        calls = record.calls
        writer = calls[i]
        share = writer.output - record.input if adds else writer.output
        attention, projection = _attention_of(record, i, share)
        if attention is None or projection is None:
            raise AdapterError(f"{name}: found no output projection in the attention `{writer.name}`")
        width = projection.input.shape[-1]
        if width % self.num_heads:
            raise AdapterError(
                f"{name}: the attention's output projection reads {width} values, not a multiple of "
                f"num_attention_heads = {self.num_heads}"
            )
        mid = record.input + share
        parallel = not any(_close(c.input, mid) for c in calls[i + 1 : j + 1] if c.input is not None)
        return BlockParts(
            attention=attention.module,
            out_proj=projection.module,
            attention_writer=writer.module,
            mlp_writer=calls[j].module,
            adds_residual=adds,
            parallel=parallel,
        )


@dataclass
class _Call:
    name: str
    module: nn.Module
    input: torch.Tensor | None
    output: torch.Tensor
    linears: list[_Call]
    """The linear layers called inside it, in order."""


class _Record:
    """One block's probe: its input, output and its direct children's calls, in order."""

    def __init__(self) -> None:
        self.input: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.calls: list[_Call] = []
        self._open: list[_Call] = []

    def names(self) -> list[str]:
        return list(dict.fromkeys(c.name for c in self.calls))

    def watch(self, block: nn.Module) -> list[Any]:
        handles = [
            block.register_forward_pre_hook(self._block_in, with_kwargs=True),
            block.register_forward_hook(self._block_out),
        ]
        for name, child in block.named_children():
            handles.append(child.register_forward_pre_hook(self._child_in(name)))
            handles.append(child.register_forward_hook(self._child_out))
            for sub in child.modules():
                if _is_linear(sub) and sub is not child:
                    handles.append(sub.register_forward_hook(self._linear_out))
        return handles

    def _block_in(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self.input = _first_tensor(args) if _first_tensor(args) is not None else kwargs.get("hidden_states")

    def _block_out(self, module: nn.Module, args: Any, output: Any) -> None:
        self.output = _first_tensor(output)

    def _child_in(self, name: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            given = _first_tensor(args)
            self._open.append(
                _Call(name, module, None if given is None else _like(given, self.input), torch.empty(0), [])
            )

        return hook

    def _child_out(self, module: nn.Module, args: Any, output: Any) -> None:
        call = self._open.pop()
        tensor = _first_tensor(output)
        if tensor is not None:
            call.output = _like(tensor.clone(), self.input)  # cloned: Falcon adds to its MLP's output in place
            self.calls.append(call)

    def _linear_out(self, module: nn.Module, args: Any, output: Any) -> None:
        tensor, given = _first_tensor(output), _first_tensor(args)
        if self._open and tensor is not None and given is not None:
            self._open[-1].linears.append(
                _Call(type(module).__name__, module, given, _like(tensor.clone(), self.input), [])
            )


def _like(tensor: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    """`tensor` in the residual stream's shape when it holds as many values (OPT's fc2 works on
    [batch × positions, d])."""
    if reference is not None and tensor.shape != reference.shape and tensor.numel() == reference.numel():
        return tensor.reshape(reference.shape)
    return tensor


def _is_linear(module: nn.Module) -> bool:
    """nn.Linear or transformers' Conv1D (GPT-2's [in, out] linear layer)."""
    return isinstance(module, nn.Linear) or type(module).__name__ == "Conv1D"


def _additive(record: _Record) -> tuple[int, int, bool] | None:
    """The earliest calls i < j with in + out_i + out_j = out."""
    calls, x, y = record.calls, record.input, record.output
    assert x is not None and y is not None
    for j in range(len(calls)):
        for i in range(j):
            a, b = calls[i].output, calls[j].output
            if a.shape == x.shape and b.shape == x.shape and _close(x + a + b, y):
                return i, j, False
    return None


def _residual_included(record: _Record) -> tuple[int, int, bool] | None:
    """Calls i < j where j's output is the block's and i's is the input plus its projection's."""
    calls, x, y = record.calls, record.input, record.output
    assert x is not None and y is not None
    for j, last in enumerate(calls):
        if last.output.shape != y.shape or not _close(last.output, y):
            continue
        for i in range(j):
            call = calls[i]
            if call.linears and call.output.shape == x.shape and _close(x + call.linears[-1].output, call.output):
                return i, j, True
    return None


def _attention_of(record: _Record, i: int, share: torch.Tensor) -> tuple[_Call | None, _Call | None]:
    """The attention call and its output projection's call: the writer i itself when it calls a linear
    layer whose output is its share, else the latest earlier call whose output the writer read."""
    writer = record.calls[i]
    if writer.linears:
        return (writer, writer.linears[-1]) if _close(writer.linears[-1].output, share) else (None, None)
    for k in range(i - 1, -1, -1):
        call = record.calls[k]
        if writer.input is not None and call.linears and _close(call.output, writer.input):
            last = call.linears[-1]
            return (call, last) if _close(last.output, call.output) else (None, None)
    return None, None


@contextmanager
def capture(layout: BlockLayout, what: dict[str, list[torch.Tensor | None]]) -> Iterator[None]:
    """Hooks that record, during one forward pass, each block's attention share ("attention", what it
    adds to the residual), MLP writer output ("mlp"), and output-projection input ("heads"), by block."""
    n = len(layout.parts)
    for key in ("attention", "mlp", "heads", "input", "output"):
        what[key] = [None] * n
    handles = []

    def keep(key: str, index: int, pick: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = _first_tensor(args if pick == "args" else output)
            what[key][index] = None if tensor is None else tensor.clone()  # Falcon adds to its MLP's in place

        return hook

    def block_in(index: int) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            first = _first_tensor(args)
            what["input"][index] = first if first is not None else kwargs.get("hidden_states")

        return hook

    for index, (parts, block) in enumerate(zip(layout.parts, layout.adapter._blocks, strict=True)):
        handles.append(block.register_forward_pre_hook(block_in(index), with_kwargs=True))
        handles.append(block.register_forward_hook(keep("output", index, "output")))
        handles.append(parts.attention_writer.register_forward_hook(keep("attention", index, "output")))
        handles.append(parts.mlp_writer.register_forward_hook(keep("mlp", index, "output")))
        handles.append(parts.out_proj.register_forward_hook(keep("heads", index, "args")))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def after_attention(layout: BlockLayout) -> Iterator[list[torch.Tensor | None]]:
    """Hooks that record, during one forward pass, each block's residual stream after its attention:
    the block's input plus its attention share (the writer's output, minus the input when it adds the
    residual itself). In a parallel block, whose MLP reads the input too, that is the input plus the
    attention's output, a state no later part reads. The state is formed in the writer's hook, while
    the input is as the block received it, so only one tensor per block is kept, not `capture`'s five."""
    n = len(layout.parts)
    states: list[torch.Tensor | None] = [None] * n
    inputs: list[torch.Tensor | None] = [None] * n
    handles = []

    def block_in(index: int) -> Any:
        def hook(module: nn.Module, args: Any, kwargs: Any) -> None:
            first = _first_tensor(args)
            inputs[index] = first if first is not None else kwargs.get("hidden_states")

        return hook

    def written(index: int, adds_residual: bool) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor, given = _first_tensor(output), inputs[index]
            if tensor is None or given is None:
                states[index] = None
                return
            tensor = _like(tensor, given)
            states[index] = tensor.clone() if adds_residual else given + tensor

        return hook

    for index, (parts, block) in enumerate(zip(layout.parts, layout.adapter._blocks, strict=True)):
        handles.append(block.register_forward_pre_hook(block_in(index), with_kwargs=True))
        handles.append(parts.attention_writer.register_forward_hook(written(index, parts.adds_residual)))
    try:
        yield states
    finally:
        for handle in handles:
            handle.remove()
