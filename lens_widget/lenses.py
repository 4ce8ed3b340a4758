"""The logit lens and the tuned lens: how a residual-stream vector is translated before decoding.

A lens only translates hidden states; decoding (final norm, unembedding, logit post-processing) is
the model adapter's, shared by every lens. Translator i reads `hidden_states[i]` (0 = embedding
output, i = after block i-1) as h + A_i h + b_i. The grid's last row is the model's own output,
never a lens of `hidden_states[L]` (which transformers already final-normed).
"""

from __future__ import annotations

import os
import socket
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlparse

import torch
from torch import nn

from .adapter import ModelAdapter
from .errors import InvalidLensError, LensFileError, LensMismatchError, LensNotFoundError
from .lens_files import (
    CONFIG_FILE,
    PARAMS_FILE,
    SAFETENSORS_FILE,
    LensConfig,
    read_lens_config,
    read_lens_params,
    unembed_hash,
    write_lens_folder,
)

HUB_REPO = "AlignmentResearch/tuned-lens"
"""The Hugging Face Space where tuned-lens publishes its lenses, under `lens/<model id>/`."""


@runtime_checkable
class Lens(Protocol):
    """What the grid needs from a lens."""

    name: str

    def translate(self, hidden: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """Translate `hidden` [rows, positions, d] where row r holds hidden_states[layers[r]]."""
        ...


class LogitLens:
    """Decode every layer as if it were the last: the tuned lens with A = 0, b = 0."""

    name = "logit"

    def translate(self, hidden: torch.Tensor, layers: list[int]) -> torch.Tensor:
        return hidden

    def __repr__(self) -> str:
        return "LogitLens()"


class TunedLens(nn.Module):
    """One learned affine translator per layer, zero-initialised (then it equals the logit lens)."""

    name = "tuned"

    def __init__(self, config: LensConfig) -> None:
        super().__init__()
        self.config = config
        d = config.d_model
        self.layer_translators = nn.ModuleList(
            nn.Linear(d, d, bias=config.bias) for _ in range(config.num_hidden_layers)
        )
        for translator in self.layer_translators:
            nn.init.zeros_(translator.weight)
            if translator.bias is not None:
                nn.init.zeros_(translator.bias)
        self.requires_grad_(False)

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    @classmethod
    def from_model(cls, model: nn.Module | ModelAdapter, *, bias: bool = True) -> TunedLens:
        """An untrained lens shaped for `model`, on its device and in its dtype."""
        adapter = _adapter(model)
        with adapter.unembedding() as weight:
            fingerprint = unembed_hash(weight)
        config = LensConfig(
            base_model_name_or_path=_model_id(adapter.model) or "",
            d_model=adapter.d_model,
            num_hidden_layers=adapter.num_layers,
            bias=bias,
            base_model_revision=_model_revision(adapter.model),
            unembed_hash=fingerprint,
        )
        return cls(config).to(device=adapter.device, dtype=adapter.dtype)

    @classmethod
    def load(cls, folder: str | Path, model: nn.Module | ModelAdapter | None = None) -> TunedLens:
        """Load a lens folder; given a model, check it fits and follow the model's device and dtype.

        The config is compared with the model before the parameters are read or any translator is
        built, so a lens for another model costs nothing however large its config says it is.
        """
        config = read_lens_config(folder)
        adapter = None if model is None else _adapter(model)
        if adapter is not None:
            _check_shape(config, adapter)
        params = read_lens_params(folder, config)
        lens = cls(config)
        first = params["0.weight"]
        lens.to(dtype=first.dtype)
        lens.layer_translators.load_state_dict(params, strict=True)
        return lens if adapter is None else lens.fit(adapter)

    @classmethod
    def from_pretrained(
        cls,
        model_or_id: nn.Module | ModelAdapter | str,
        lens_id: str | os.PathLike[str] | None = None,
        *,
        revision: str = "main",
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> TunedLens:
        """A lens from a local folder or, failing that, the tuned-lens Space on the Hub.

        `lens_id` defaults to the model's id. Given a model, the lens is checked against it and
        moved to its device and dtype.
        """
        model = None if isinstance(model_or_id, str) else model_or_id
        if lens_id is None:
            lens_id = model_or_id if isinstance(model_or_id, str) else _model_id(_adapter(model_or_id).model)
        if not lens_id:
            raise LensNotFoundError("The model has no name_or_path to look a lens up by: pass lens_id=<folder>.")
        folder = resolve_lens_folder(lens_id, revision=revision, cache_dir=cache_dir)
        return cls.load(folder, model)

    def save(self, folder: str | Path) -> Path:
        """Write a tuned-lens compatible folder."""
        return write_lens_folder(folder, self.config, dict(self.layer_translators.state_dict()))

    def check_model(self, model: nn.Module | ModelAdapter) -> None:
        """Refuse a model of another shape and parameters that are not finite (every cell decoded
        through them would be invalid); warn when the unembedding fingerprint differs."""
        adapter = _adapter(model)
        cls_name = type(adapter.model).__name__
        _check_shape(self.config, adapter)
        self.check_finite()
        if self.config.unembed_hash is not None:
            with adapter.unembedding() as weight:
                actual = unembed_hash(weight)
            if actual != self.config.unembed_hash:
                warnings.warn(
                    f"the lens was trained for {self.config.base_model_name_or_path!r}, whose unembedding "
                    f"hash {self.config.unembed_hash[:12]}… differs from this {cls_name}'s {actual[:12]}…; "
                    "if this is not the model the lens was trained for, its predictions are meaningless (the hash "
                    "is fragile: the same model loaded in another dtype can differ too)",
                    stacklevel=2,
                )

    def check_finite(self) -> None:
        """Refuse NaN or infinite parameters (raise InvalidLensError), naming the first such one."""
        for name, param in self.layer_translators.named_parameters(prefix="layer_translators"):
            if not bool(torch.isfinite(param).all()):
                dtype = str(param.dtype).removeprefix("torch.")
                raise InvalidLensError(
                    f"TunedLens parameter {name} holds NaN or infinite values in {dtype}; a lens must be finite "
                    "to decode anything (a diverged training run, or values beyond the range of the model's dtype?)"
                )

    def fit(self, model: nn.Module | ModelAdapter) -> TunedLens:
        """This lens, checked against `model` and moved to its device and dtype (in place).

        Checked before the cast, so that a refused lens is left as it was: a float32 weight beyond
        float16's range would become infinite there.
        """
        adapter = _adapter(model)
        self.check_model(adapter)
        if adapter.dtype.is_floating_point:
            limit = torch.finfo(adapter.dtype).max
            for name, param in self.layer_translators.named_parameters(prefix="layer_translators"):
                if param.numel() and float(param.detach().abs().max()) > limit:
                    raise InvalidLensError(
                        f"TunedLens parameter {name} holds values beyond the range of {adapter.dtype} (the model's "
                        f"dtype, largest {limit:.4g}): cast there they would be infinite; load the model in float32"
                    )
        return self.to(device=adapter.device, dtype=adapter.dtype)

    def translate(self, hidden: torch.Tensor, layers: list[int]) -> torch.Tensor:
        if hidden.shape[0] != len(layers):
            raise ValueError(f"{hidden.shape[0]} rows of hidden states but {len(layers)} layer indices")
        out = torch.empty_like(hidden)
        for r, layer in enumerate(layers):
            translator = self.layer_translators[layer]
            h = hidden[r].to(translator.weight.dtype)
            out[r] = h + translator(h)
        return out

    def forward(self, hidden: torch.Tensor, layer: int) -> torch.Tensor:
        """Translate hidden_states[layer] of any shape [..., d]."""
        translator = self.layer_translators[layer]
        return hidden + translator(hidden)


def _check_shape(config: LensConfig, adapter: ModelAdapter) -> None:
    cls_name = type(adapter.model).__name__
    if config.d_model != adapter.d_model:
        raise LensMismatchError(f"lens d_model = {config.d_model} but {cls_name} has d_model = {adapter.d_model}")
    if config.num_hidden_layers != adapter.num_layers:
        raise LensMismatchError(
            f"lens num_hidden_layers = {config.num_hidden_layers} but {cls_name} has "
            f"num_hidden_layers = {adapter.num_layers}"
        )


def _adapter(model: nn.Module | ModelAdapter) -> ModelAdapter:
    return model if isinstance(model, ModelAdapter) else ModelAdapter(model)


def _model_id(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    name = getattr(config, "name_or_path", None) or getattr(config, "_name_or_path", None)
    return str(name) if name else None


def _model_revision(model: nn.Module) -> str | None:
    config = getattr(model, "config", None)
    revision = getattr(config, "_commit_hash", None)
    return str(revision) if revision else None


def resolve_lens_folder(
    lens_id: str | os.PathLike[str],
    *,
    revision: str = "main",
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """A local folder if `lens_id` is one, else the files of `lens/<lens_id>` downloaded from the Space."""
    path = Path(lens_id).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise LensFileError(f"{path} is a file; pass the folder that holds {CONFIG_FILE} and {PARAMS_FILE}")
    lens_id = str(lens_id).strip("/")
    where = f"https://huggingface.co/spaces/{HUB_REPO}/tree/{revision}/lens/{lens_id}"
    offline = False
    try:
        from huggingface_hub import constants, hf_hub_download

        # huggingface_hub retries an unreachable host for half a minute; probe once instead, and
        # use only the local cache when offline.
        offline = bool(constants.HF_HUB_OFFLINE) or not _reachable(constants.ENDPOINT)

        def download(filename: str) -> str:
            return hf_hub_download(
                HUB_REPO,
                filename,
                subfolder=f"lens/{lens_id}",
                repo_type="space",
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=offline,
            )

        config = download(CONFIG_FILE)
        try:
            download(PARAMS_FILE)
        except Exception as exc:
            if "EntryNotFound" not in type(exc).__name__:
                raise
            download(SAFETENSORS_FILE)
    except Exception as exc:
        why = "the Hub is unreachable (offline) and it is not in the local cache" if offline else _short(exc)
        raise LensNotFoundError(
            f"No tuned lens for {lens_id!r}: it is not a local folder, and fetching it from the Hub failed "
            f"({type(exc).__name__}: {why}). Download {CONFIG_FILE} and {PARAMS_FILE} from {where} "
            f"into a folder, then pass that folder: TunedLens.from_pretrained(model, lens_id='path/to/folder')."
        ) from exc
    return Path(config).parent


def _reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's host opens within `timeout` seconds."""
    parsed = urlparse(endpoint)
    host = parsed.hostname
    if not host:
        return False
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:200] + "…"
