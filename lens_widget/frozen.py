"""A module between the residual stream and the logits, made linear around one point.

Direct logit attribution splits a residual vector t = Σ xᵢ into components and asks what each adds
to one logit. A norm is not linear, but with its scale frozen at t it is: N(x) = G ⊙ P(x) / σ(t) + b,
where P centres (LayerNorm) or does nothing (RMSNorm), and then Σ N_frozen(xᵢ) + b = N(t) exactly.
G, P and b are found by probing the module (its output on zero, on a constant and on two
alternating ±1 vectors), so any LayerNorm or RMSNorm variant works (Gemma's 1 + w, a float32
upcast, no bias), and σ(t) is fitted from the module's real output at t, then checked there. A module
that is not a norm must be affine (checked on random points), and is then used as it is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from .adapter import _first_tensor
from .errors import AdapterError


def tolerance(dtype: torch.dtype) -> float:
    """Relative error at which a probed map is taken to reproduce the module: float32's even for
    float64 models (whose RMSNorms mostly compute in float32), else half precision's."""
    return 1e-4 if dtype in (torch.float32, torch.float64) else 2e-2


@dataclass(frozen=True)
class Frozen:
    """y = linear(x) + constant: one module around one point, in float64."""

    linear: Callable[[torch.Tensor], torch.Tensor]
    """The linear part, applied to float64 vectors [n, d]."""
    constant: torch.Tensor
    """float64 [d_out]: what the module adds whatever its input (a norm's bias, a layer's bias)."""
    kind: str
    """"norm" (scale frozen at the point) or "affine"."""


def freeze(module: nn.Module, point: torch.Tensor) -> Frozen:
    """`module` as a linear map plus a constant around `point` ([d], the total it will see), exact
    there; AdapterError when it is neither a norm nor affine."""
    dtype, device = point.dtype, point.device
    d = point.shape[-1]
    tol = tolerance(dtype)

    def call(x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = _first_tensor(module(x.to(device, dtype)[None]))
        if out is None:
            raise AdapterError(f"{type(module).__name__} returned no tensor")
        return out[0].double()

    zero = call(torch.zeros(1, d))[0]
    norm = _as_norm(call, point, zero, tol)
    if norm is not None:
        return norm
    x, y = torch.randn(2, d, dtype=torch.float64) * point.double().norm() / d**0.5
    outs = call(torch.stack([x, y, x + y]))
    scale = outs.abs().max() + 1
    if (outs[0] + outs[1] - zero - outs[2]).abs().max() <= tol * scale * 10:
        return Frozen(lambda v: call(v) - zero, zero, "affine")
    raise AdapterError(
        f"{type(module).__name__} is neither a norm (LayerNorm, RMSNorm) nor affine: its output cannot be "
        "split into what each part of the residual stream adds"
    )


def _as_norm(
    call: Callable[[torch.Tensor], torch.Tensor], point: torch.Tensor, zero: torch.Tensor, tol: float
) -> Frozen | None:
    """The norm reading of the module (None when it is not one): gain G from two mean-zero ±1 probes,
    centring from a constant probe, σ(t) fitted at the point and checked."""
    d = point.shape[-1]
    if zero.shape != (d,):
        return None
    signs = torch.tensor([(-1.0) ** i for i in range(d)], dtype=torch.float64)
    first, second = signs.clone(), -signs.clone()
    if d % 2:  # d odd: each probe leaves out one end, so that its mean is 0
        first[-1], second[0] = 0.0, 0.0
        second[1:] = signs[:-1]
    outs = call(torch.stack([first, second, torch.ones(d, dtype=torch.float64)]))
    gain = (outs[0] - zero) * first
    if d % 2:
        gain[-1] = ((outs[1] - zero) * second)[-1]
    centred = bool((outs[2] - zero).abs().max() <= tol * (gain.abs().max() + 1) * 10)
    t = point.double()
    p = t - t.mean() if centred else t
    s = gain * p
    y = call(t[None])[0] - zero
    denominator = float(s @ y)
    if denominator == 0.0 or not torch.isfinite(s).all():
        return None
    sigma = float(s @ s) / denominator
    frozen_gain = gain / sigma
    if (frozen_gain * p - y).abs().max() > tol * (y.abs().max() + 1) * 10:
        return None

    def linear(v: torch.Tensor) -> torch.Tensor:
        v = v.double()
        return frozen_gain * (v - v.mean(dim=-1, keepdim=True) if centred else v)

    return Frozen(linear, zero, "norm")
