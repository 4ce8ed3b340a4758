"""Reading and writing tuned-lens lens folders (`config.json` + `params.pt`), byte-compatible with
the tuned-lens project so that the lenses people already trained load here and ours load there.

Files are untrusted input: parameters load with `weights_only=True` (a pickled object is refused
before anything runs), and every key, shape and type is checked before use. Checks cost what the
files hold, never what a config claims: a config can say 10^8 layers in a few bytes.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import LensFileError

CONFIG_FILE = "config.json"
PARAMS_FILE = "params.pt"
SAFETENSORS_FILE = "params.safetensors"
LENS_TYPE = "linear_tuned_lens"
CHECKSUM_SUFFIX = ".sha256"
"""A side file `params.pt.sha256` (sha256sum's format) that tuned-lens ignores: torch.load does not
check the zip's CRC, so a flipped bit would otherwise load as a silently wrong weight."""
PLAUSIBLE_MAGNITUDE = 1e6
"""No translator weight or bias comes near this (hidden states of the largest models reach ~1e4); a
flipped exponent bit in a file without a checksum lands far above it (0.5 → 1.7e38)."""


@dataclass(frozen=True)
class LensConfig:
    """The seven keys of a tuned-lens `config.json`."""

    base_model_name_or_path: str
    d_model: int
    num_hidden_layers: int
    bias: bool = True
    base_model_revision: str | None = None
    unembed_hash: str | None = None
    lens_type: str = LENS_TYPE

    @classmethod
    def from_dict(cls, data: Any, source: str = "config") -> LensConfig:
        if not isinstance(data, dict):
            raise LensFileError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            warnings.warn(f"{source}: ignoring unknown lens config keys {unknown}", stacklevel=3)
        missing = [k for k in ("base_model_name_or_path", "d_model", "num_hidden_layers") if k not in data]
        if missing:
            raise LensFileError(f"{source}: missing required keys {missing}")
        values = {k: data[k] for k in known if k in data}
        _check_type(values, "base_model_name_or_path", str, source)
        _check_type(values, "d_model", int, source)
        _check_type(values, "num_hidden_layers", int, source)
        _check_type(values, "bias", bool, source)
        for key in ("base_model_revision", "unembed_hash"):
            if values.get(key) is not None:
                _check_type(values, key, str, source)
        _check_type(values, "lens_type", str, source)
        if values["d_model"] < 1 or values["num_hidden_layers"] < 1:
            raise LensFileError(f"{source}: d_model and num_hidden_layers must be positive")
        if values.get("lens_type", LENS_TYPE) != LENS_TYPE:
            raise LensFileError(f"{source}: lens_type {values['lens_type']!r} is not supported (only {LENS_TYPE!r})")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_type(values: dict[str, Any], key: str, kind: type, source: str) -> None:
    if key not in values:
        return
    value = values[key]
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise LensFileError(f"{source}: {key} must be {kind.__name__}, got {value!r}")


def expected_shapes(config: LensConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict keys and shapes a lens of this config has: `{i}.weight` [d, d], `{i}.bias` [d]."""
    d = config.d_model
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(config.num_hidden_layers):
        shapes[f"{i}.weight"] = (d, d)
        if config.bias:
            shapes[f"{i}.bias"] = (d,)
    return shapes


def unembed_hash(weight: torch.Tensor) -> str:
    """tuned-lens's fingerprint of an unembedding: SHA-256 of numpy's summarised print at precision 1.

    Fragile by design (it reads corner values only), so a mismatch only warns. Fixed print options,
    so a user's own numpy settings cannot change it.
    """
    array = weight.detach().to("cpu", torch.float32).numpy()
    with np.printoptions(precision=1, threshold=1000, edgeitems=3, linewidth=75, suppress=False):
        text = np.array_str(array, precision=1)
    return hashlib.sha256(text.encode()).hexdigest()


def read_lens_folder(folder: str | Path) -> tuple[LensConfig, dict[str, torch.Tensor]]:
    """Config and checked parameters of a lens folder, on the CPU in the file's dtype."""
    config = read_lens_config(folder)
    return config, read_lens_params(folder, config)


def read_lens_config(folder: str | Path) -> LensConfig:
    """The checked config alone: cheap, so a caller can compare it with a model before reading parameters."""
    folder = Path(folder)
    if not folder.is_dir():
        raise LensFileError(f"{folder} is not a folder; a lens folder holds {CONFIG_FILE} and {PARAMS_FILE}")
    config_path = folder / CONFIG_FILE
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LensFileError(f"{folder} has no {CONFIG_FILE}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LensFileError(f"{config_path} is not valid JSON: {exc}") from exc
    return LensConfig.from_dict(data, source=str(config_path))


def read_lens_params(folder: str | Path, config: LensConfig) -> dict[str, torch.Tensor]:
    """The parameters of a lens folder, checked against its config, on the CPU in the file's dtype."""
    params = _read_params(Path(folder))
    check_params(config, params, source=str(folder))
    return params


def _read_params(folder: Path) -> dict[str, torch.Tensor]:
    pt, st = folder / PARAMS_FILE, folder / SAFETENSORS_FILE
    if pt.is_file():
        check_checksum(pt)
        try:
            loaded = torch.load(pt, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle, zip and EOF errors all mean the same to the user
            raise LensFileError(
                f"{pt} could not be loaded as plain tensors ({type(exc).__name__}: {_first_line(exc)}). "
                "It is truncated or corrupt, or it holds pickled objects, which are refused for safety."
            ) from exc
        return _as_tensor_dict(loaded, str(pt))
    if st.is_file():
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        check_checksum(st)
        try:
            return _as_tensor_dict(load_file(st, device="cpu"), str(st))
        except (SafetensorError, OSError, ValueError) as exc:
            raise LensFileError(f"{st} is not a valid safetensors file: {_first_line(exc)}") from exc
    raise LensFileError(f"{folder} has neither {PARAMS_FILE} nor {SAFETENSORS_FILE}")


def file_sha256(path: Path) -> str:
    """Read in pieces: a lens of a 70B model is tens of GB, which must not be held twice."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def check_checksum(path: Path) -> None:
    """Refuse a parameters file whose side checksum (written by `write_lens_folder`) differs. Files
    without one (tuned-lens's own, or copied without it) are checked only for plausible values."""
    side = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not side.is_file():
        return
    try:
        expected = side.read_text(encoding="ascii").split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise LensFileError(f"{side} is not a sha256 checksum file ({type(exc).__name__})") from exc
    if file_sha256(path) != expected:
        raise LensFileError(
            f"{path} does not match its checksum in {side.name}: the file changed after it was saved (a "
            "truncated or corrupted copy, or a bad disk); copy it again. If it was rewritten on purpose by "
            f"another tool, delete {side.name}"
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _as_tensor_dict(loaded: Any, source: str) -> dict[str, torch.Tensor]:
    if not isinstance(loaded, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise LensFileError(f"{source}: expected a dict of named tensors, got {type(loaded).__name__}")
    return dict(loaded)


def check_params(config: LensConfig, params: dict[str, torch.Tensor], source: str = "lens") -> None:
    """Refuse parameters whose keys, shapes or dtypes do not match the config.

    Keys are compared at the cost of what the file holds, not of what the config claims: per-layer
    expectations are built only once the file holds exactly the keys the config asks for.
    """
    needed = config.num_hidden_layers * (2 if config.bias else 1)
    extra = sorted((k for k in params if not _is_expected_key(config, k)), key=_key_order)
    missing = _first_missing(config, params, 5) if len(params) - len(extra) < needed else []
    if missing or extra:
        raise LensFileError(
            f"{source}: parameters do not match its config (d_model={config.d_model}, "
            f"num_hidden_layers={config.num_hidden_layers}, bias={config.bias}): the file holds {len(params)} "
            f"tensors, the config needs {needed}; missing {missing[:4]}{'…' if len(missing) > 4 else ''}, "
            f"unexpected {extra[:4]}{'…' if len(extra) > 4 else ''}"
        )
    for key, shape in expected_shapes(config).items():
        tensor = params[key]
        if tuple(tensor.shape) != shape:
            raise LensFileError(f"{source}: {key} has shape {tuple(tensor.shape)}, expected {shape}")
        if not tensor.is_floating_point():
            raise LensFileError(f"{source}: {key} has dtype {tensor.dtype}, expected a float dtype")
        if not bool(torch.isfinite(tensor).all()):
            raise LensFileError(f"{source}: {key} holds NaN or infinite values")
        largest = float(tensor.detach().abs().amax()) if tensor.numel() else 0.0
        if largest > PLAUSIBLE_MAGNITUDE:
            raise LensFileError(
                f"{source}: {key} holds values up to {largest:.2g}, far beyond any trained translator's "
                f"({PLAUSIBLE_MAGNITUDE:.0e}): the file is probably corrupt"
            )


def _is_expected_key(config: LensConfig, key: str) -> bool:
    index, _, name = key.partition(".")
    if not (index.isascii() and index.isdigit()) or name not in (("weight", "bias") if config.bias else ("weight",)):
        return False
    return key == f"{int(index)}.{name}" and int(index) < config.num_hidden_layers


def _first_missing(config: LensConfig, params: dict[str, torch.Tensor], limit: int) -> list[str]:
    """The config's first `limit` keys absent from `params`: found within len(params) + limit layers."""
    missing: list[str] = []
    names = ("weight", "bias") if config.bias else ("weight",)
    for i in range(config.num_hidden_layers):
        missing += [f"{i}.{name}" for name in names if f"{i}.{name}" not in params]
        if len(missing) >= limit:
            break
    return missing


def _key_order(key: str) -> tuple[int, str]:
    index, _, name = key.partition(".")
    return (int(index) if index.isascii() and index.isdigit() else -1, name)


def write_lens_folder(folder: str | Path, config: LensConfig, params: dict[str, torch.Tensor]) -> Path:
    """Write `config.json` (the seven keys), `params.pt` (no key prefix, CPU tensors) and its checksum."""
    check_params(config, params, source="lens to save")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous().clone() for k, v in params.items()}
    params_path = folder / PARAMS_FILE
    side = params_path.with_name(PARAMS_FILE + CHECKSUM_SUFFIX)
    side.unlink(missing_ok=True)  # a stale checksum must not outlive the file it described
    torch.save(cpu, params_path)
    side.write_text(f"{file_sha256(params_path)}  {PARAMS_FILE}\n", encoding="ascii")
    (folder / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2) + "\n", encoding="utf-8")
    return folder
