"""Lens folders: compatible with tuned-lens's format, and safe against bad files."""

from __future__ import annotations

import json
import pathlib
import struct
import tracemalloc
import warnings
from pathlib import Path

import pytest
import torch
from tiny_models import HIDDEN, LAYERS, tiny_model

from lens_widget import LensFileError, LensMismatchError, LensNotFoundError, ModelAdapter, TunedLens, lens_files
from lens_widget.errors import InvalidLensError
from lens_widget.lens_files import unembed_hash

# The tuned-lens format, spelled out from its specification (not from our code).
SPEC_CONFIG_KEYS = {
    "base_model_name_or_path",
    "d_model",
    "num_hidden_layers",
    "bias",
    "base_model_revision",
    "unembed_hash",
    "lens_type",
}


def spec_params(d: int, layers: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        shapes[f"{i}.weight"] = (d, d)
        if bias:
            shapes[f"{i}.bias"] = (d,)
    return shapes


def trained(lens: TunedLens, seed: int = 0) -> TunedLens:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lens.parameters():
            p.copy_(torch.randn(p.shape, generator=gen).to(p.dtype))
    return lens


def write_tuned_lens_folder(folder: Path, config: dict, params: dict) -> Path:
    """A folder as the tuned-lens project writes it: json.dump of the config, torch.save of the dict."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    torch.save(params, folder / "params.pt")
    return folder


def spec_config(**overrides: object) -> dict:
    config = {
        "base_model_name_or_path": "EleutherAI/pythia-70m-deduped",
        "d_model": HIDDEN,
        "num_hidden_layers": LAYERS,
        "bias": True,
        "base_model_revision": None,
        "unembed_hash": None,
        "lens_type": "linear_tuned_lens",
    }
    config.update(overrides)
    return config


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("bias", [True, False])
def test_save_load_round_trip_is_exact_and_matches_the_spec(tmp_path: Path, dtype: torch.dtype, bias: bool) -> None:
    model = tiny_model("gpt_neox")
    lens = trained(TunedLens.from_model(model, bias=bias).to(dtype))
    lens.save(tmp_path / "lens")
    config = json.loads((tmp_path / "lens" / "config.json").read_text())
    assert set(config) == SPEC_CONFIG_KEYS
    assert config["d_model"] == HIDDEN and config["num_hidden_layers"] == LAYERS and config["bias"] is bias
    assert config["lens_type"] == "linear_tuned_lens"
    assert config["unembed_hash"] == unembed_hash(model.get_output_embeddings().weight)
    raw = torch.load(tmp_path / "lens" / "params.pt", weights_only=True, map_location="cpu")
    assert {k: tuple(v.shape) for k, v in raw.items()} == spec_params(HIDDEN, LAYERS, bias)
    assert all(v.dtype == dtype for v in raw.values())
    loaded = TunedLens.load(tmp_path / "lens")
    for key, value in lens.layer_translators.state_dict().items():
        assert torch.equal(loaded.layer_translators.state_dict()[key], value), key
    assert loaded.config == lens.config


def test_a_folder_written_by_tuned_lens_loads_and_decodes(tmp_path: Path) -> None:
    model = tiny_model("gpt_neox")
    params = {k: torch.randn(s) * 0.1 for k, s in spec_params(HIDDEN, LAYERS).items()}
    folder = write_tuned_lens_folder(tmp_path / "pythia", spec_config(), params)
    lens = TunedLens.from_pretrained(model, lens_id=str(folder))
    assert torch.equal(lens.layer_translators[1].weight, params["1.weight"])
    h = torch.randn(4, HIDDEN)
    expected = h + h @ params["2.weight"].T + params["2.bias"]
    torch.testing.assert_close(lens(h, 2), expected)


def test_unknown_keys_including_the_old_misspelling_only_warn(tmp_path: Path) -> None:
    params = {k: torch.zeros(s) for k, s in spec_params(HIDDEN, LAYERS).items()}
    folder = write_tuned_lens_folder(tmp_path / "old", spec_config(unemebd_hash="abc"), params)
    with pytest.warns(UserWarning, match=r"ignoring unknown lens config keys \['unemebd_hash'\]"):
        TunedLens.load(folder)


def test_safetensors_params_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    params = {k: torch.randn(s, dtype=torch.float16) for k, s in spec_params(HIDDEN, LAYERS).items()}
    folder = tmp_path / "st"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(spec_config()))
    save_file(params, str(folder / "params.safetensors"))
    lens = TunedLens.load(folder)
    assert lens.layer_translators[0].weight.dtype == torch.float16
    assert torch.equal(lens.layer_translators[0].weight, params["0.weight"])


@pytest.mark.filterwarnings("ignore:the lens was trained for")  # bf16 rounding can change the fragile hash
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_lens_follows_the_models_dtype(tmp_path: Path, dtype: torch.dtype) -> None:
    model = tiny_model("llama", dtype=dtype)
    TunedLens.from_model(tiny_model("llama")).save(tmp_path / "l")
    lens = TunedLens.from_pretrained(model, lens_id=tmp_path / "l")
    assert lens.layer_translators[0].weight.dtype == dtype
    assert lens.layer_translators[0].weight.device == model.lm_head.weight.device


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"d_model": HIDDEN * 2}, f"lens d_model = {HIDDEN * 2} but GPTNeoXForCausalLM has d_model = {HIDDEN}"),
        ({"num_hidden_layers": LAYERS + 1}, f"lens num_hidden_layers = {LAYERS + 1} but GPTNeoXForCausalLM has "),
    ],
)
def test_a_lens_for_another_model_shape_is_refused_naming_both_values(
    tmp_path: Path, overrides: dict, message: str
) -> None:
    config = spec_config(**overrides)
    params = {k: torch.zeros(s) for k, s in spec_params(config["d_model"], config["num_hidden_layers"]).items()}
    folder = write_tuned_lens_folder(tmp_path / "x", config, params)
    with pytest.raises(LensMismatchError, match=message):
        TunedLens.load(folder, tiny_model("gpt_neox"))


def test_a_mismatched_unembed_hash_warns_and_a_matching_one_does_not(tmp_path: Path) -> None:
    model = tiny_model("gpt2")
    TunedLens.from_model(model).save(tmp_path / "same")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TunedLens.load(tmp_path / "same", model)
    other = tiny_model("gpt2", seed=1)
    with pytest.warns(UserWarning, match="unembedding hash"):
        TunedLens.load(tmp_path / "same", other)


def test_unembed_hash_is_tuned_lens_fingerprint() -> None:
    import hashlib

    import numpy as np

    weight = torch.arange(12.0).reshape(3, 4) / 7
    printed = np.array_str(weight.numpy(), precision=1)
    assert unembed_hash(weight) == hashlib.sha256(printed.encode()).hexdigest()


class _Payload:
    """Would create a file when unpickled: loading must refuse it before that happens."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (pathlib.Path.touch, (self.marker,))


def test_a_pickled_object_in_params_is_refused_without_executing_it(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(spec_config()))
    torch.save({"0.weight": _Payload(marker)}, folder / "params.pt")
    with pytest.raises(LensFileError, match="pickled objects, which are refused"):
        TunedLens.load(folder)
    assert not marker.exists()


def _good_folder(tmp_path: Path) -> Path:
    params = {k: torch.zeros(s) for k, s in spec_params(HIDDEN, LAYERS).items()}
    return write_tuned_lens_folder(tmp_path / "lens", spec_config(), params)


def test_truncated_params_are_a_clear_error(tmp_path: Path) -> None:
    folder = _good_folder(tmp_path)
    data = (folder / "params.pt").read_bytes()
    (folder / "params.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(LensFileError, match="truncated or corrupt"):
        TunedLens.load(folder)


def _flip_bit(path: Path, value: float, bit: int) -> None:
    """Flip one bit of the first stored float32 equal to `value`: what a bad disk or copy does, and
    what torch.load never notices (it does not check the zip's CRC)."""
    data = bytearray(path.read_bytes())
    at = bytes(data).index(struct.pack("<f", value))
    word = struct.unpack("<I", data[at : at + 4])[0] ^ (1 << bit)
    data[at : at + 4] = struct.pack("<I", word)
    path.write_bytes(bytes(data))


def test_a_saved_lens_keeps_a_checksum_that_catches_a_flipped_bit(tmp_path: Path) -> None:
    lens = TunedLens.from_model(tiny_model("gpt_neox"))
    with torch.no_grad():
        lens.layer_translators[1].weight[3, 5] = 0.3125
    folder = lens.save(tmp_path / "lens")
    assert set(json.loads((folder / "config.json").read_text())) == SPEC_CONFIG_KEYS  # tuned-lens's keys only
    TunedLens.load(folder)
    _flip_bit(folder / "params.pt", 0.3125, 3)  # a mantissa bit: 0.3125 → 0.31250048, plausible but wrong
    with pytest.raises(LensFileError, match=r"params\.pt does not match its checksum in params\.pt\.sha256"):
        TunedLens.load(folder)


def test_a_saved_lens_without_its_checksum_still_loads(tmp_path: Path) -> None:
    """Lenses copied without the side file, or written by tuned-lens, have none."""
    folder = TunedLens.from_model(tiny_model("gpt_neox")).save(tmp_path / "lens")
    (folder / "params.pt.sha256").unlink()
    TunedLens.load(folder)


def test_an_implausible_magnitude_in_a_file_without_checksum_is_refused(tmp_path: Path) -> None:
    params = {k: torch.zeros(s) for k, s in spec_params(HIDDEN, LAYERS).items()}
    params["2.weight"][1, 1] = 0.5
    folder = write_tuned_lens_folder(tmp_path / "lens", spec_config(), params)
    _flip_bit(folder / "params.pt", 0.5, 30)  # an exponent bit: 0.5 → 1.7e38, finite
    with pytest.raises(LensFileError, match=r"2\.weight holds values up to 1\.7e\+38.*corrupt"):
        TunedLens.load(folder)


def test_garbage_params_are_a_clear_error(tmp_path: Path) -> None:
    folder = _good_folder(tmp_path)
    (folder / "params.pt").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(LensFileError, match="truncated or corrupt"):
        TunedLens.load(folder)


def test_corrupt_safetensors_are_a_clear_error(tmp_path: Path) -> None:
    folder = _good_folder(tmp_path)
    (folder / "params.pt").unlink()
    (folder / "params.safetensors").write_bytes(b"{not safetensors")
    with pytest.raises(LensFileError, match="not a valid safetensors file"):
        TunedLens.load(folder)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("2.bias"), r"missing \['2.bias'\]"),
        (lambda p: p.update({"extra.weight": torch.zeros(1)}), r"unexpected \['extra.weight'\]"),
        (lambda p: p.update({"\u00b2.weight": torch.zeros(1)}), r"unexpected \['\u00b2.weight'\]"),  # isdigit, not int
        (lambda p: p.update({"1.weight": torch.zeros(HIDDEN, HIDDEN + 1)}), r"1.weight has shape"),
        (lambda p: p.update({"0.bias": torch.zeros(HIDDEN, dtype=torch.int64)}), "expected a float dtype"),
        (lambda p: p.update({"0.bias": torch.full((HIDDEN,), float("nan"))}), "NaN or infinite"),
    ],
)
def test_params_that_do_not_match_the_config_are_refused(tmp_path: Path, mutate: object, message: str) -> None:
    params = {k: torch.zeros(s) for k, s in spec_params(HIDDEN, LAYERS).items()}
    mutate(params)  # type: ignore[operator]
    folder = write_tuned_lens_folder(tmp_path / "bad", spec_config(), params)
    with pytest.raises(LensFileError, match=message):
        TunedLens.load(folder)


def test_params_that_are_not_a_dict_of_tensors_are_refused(tmp_path: Path) -> None:
    folder = write_tuned_lens_folder(tmp_path / "list", spec_config(), [torch.zeros(2)])  # type: ignore[arg-type]
    with pytest.raises(LensFileError, match="expected a dict of named tensors, got list"):
        TunedLens.load(folder)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "is not valid JSON"),
        ("[]", "expected a JSON object, got list"),
        ('{"d_model": 4}', "missing required keys"),
        (json.dumps(spec_config(d_model="32")), "d_model must be int"),
        (json.dumps(spec_config(bias=1)), "bias must be bool"),
        (json.dumps(spec_config(lens_type="linear")), "lens_type 'linear' is not supported"),
    ],
)
def test_bad_configs_are_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    folder = _good_folder(tmp_path)
    (folder / "config.json").write_text(text)
    with pytest.raises(LensFileError, match=message):
        TunedLens.load(folder)


def test_a_folder_without_files_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LensFileError, match=r"has no config\.json"):
        TunedLens.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(spec_config()))
    with pytest.raises(LensFileError, match=r"has neither params\.pt nor params\.safetensors"):
        TunedLens.load(tmp_path)


def test_offline_hub_lookup_fails_fast_saying_what_to_download_and_where(tmp_path: Path) -> None:
    with pytest.raises(LensNotFoundError) as info:
        TunedLens.from_pretrained("EleutherAI/pythia-70m-deduped", cache_dir=tmp_path)
    text = str(info.value)
    assert "spaces/AlignmentResearch/tuned-lens/tree/main/lens/EleutherAI/pythia-70m-deduped" in text
    assert "config.json and params.pt" in text and "lens_id=" in text


def test_the_model_id_is_the_default_lens_id(tmp_path: Path) -> None:
    model = tiny_model("gpt2")
    model.config.name_or_path = "my-org/tiny-gpt2"
    with pytest.raises(LensNotFoundError, match="lens/my-org/tiny-gpt2"):
        TunedLens.from_pretrained(model, cache_dir=tmp_path)


def test_a_file_instead_of_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "params.pt").write_bytes(b"")
    with pytest.raises(LensFileError, match="is a file; pass the folder"):
        TunedLens.from_pretrained("x", lens_id=tmp_path / "params.pt")


def test_from_model_accepts_an_adapter_and_starts_at_zero() -> None:
    adapter = ModelAdapter(tiny_model("qwen2"))
    lens = TunedLens.from_model(adapter)
    assert lens.num_layers == adapter.num_layers
    assert all(bool((p == 0).all()) for p in lens.parameters())


@pytest.mark.parametrize("layers", [10**6, 10**8])
def test_a_hostile_layer_count_is_refused_before_anything_is_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layers: int
) -> None:
    folder = _good_folder(tmp_path)
    (folder / "config.json").write_text(json.dumps(spec_config(num_hidden_layers=layers)))
    model = tiny_model("gpt_neox")
    expected_shapes = lens_files.expected_shapes

    def guarded(config: lens_files.LensConfig) -> dict:
        # Per-layer expectations of the hostile config are what cost 19 s and 315 MB (10^6), or all memory.
        assert config.num_hidden_layers <= LAYERS, "expected shapes were built for the config's layer count"
        return expected_shapes(config)

    monkeypatch.setattr(lens_files, "expected_shapes", guarded)
    tracemalloc.start()
    try:
        with pytest.raises(LensFileError, match=rf"the file holds {2 * LAYERS} tensors, the config needs {2 * layers}"):
            TunedLens.load(folder)
        with pytest.raises(LensMismatchError, match=rf"lens num_hidden_layers = {layers} but GPTNeoXForCausalLM"):
            TunedLens.load(folder, model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2**20, f"{peak} bytes allocated to refuse the config"


def test_a_lens_for_another_model_is_refused_before_its_parameters_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _good_folder(tmp_path)

    def unread(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parameters were read")

    monkeypatch.setattr(lens_files.torch, "load", unread)
    with pytest.raises(LensMismatchError, match=f"lens d_model = {HIDDEN} but GPTNeoXForCausalLM has d_model = 64"):
        TunedLens.load(folder, tiny_model("gpt_neox", hidden_size=64))


def test_a_lens_with_non_finite_parameters_is_refused_by_check_model(tmp_path: Path) -> None:
    model = tiny_model("gpt_neox")
    lens = TunedLens.from_model(model)
    lens.check_model(model)
    with torch.no_grad():
        lens.layer_translators[2].weight[1, 1] = torch.inf
    with pytest.raises(InvalidLensError, match=r"layer_translators\.2\.weight holds NaN or infinite values"):
        lens.check_model(model)


@pytest.mark.filterwarnings("ignore:the lens was trained for")
def test_a_lens_file_that_overflows_the_models_dtype_is_refused(tmp_path: Path) -> None:
    params = {k: torch.zeros(s) for k, s in spec_params(HIDDEN, LAYERS).items()}
    params["1.bias"][0] = 1e6  # finite in float32, infinite in float16
    folder = write_tuned_lens_folder(tmp_path / "big", spec_config(), params)
    TunedLens.load(folder, tiny_model("gpt_neox"))
    beyond = r"layer_translators\.1\.bias holds values beyond the range of torch\.float16"
    with pytest.raises(InvalidLensError, match=beyond):
        TunedLens.load(folder, tiny_model("gpt_neox", dtype=torch.float16))
