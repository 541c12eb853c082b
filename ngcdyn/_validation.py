"""Input checks shared by the public API.

Every message names the argument (in backticks), states the rule, shows the offending value (with
shape and dtype for tensors) and says how to fix it. Never use ``assert`` for user input.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def describe(value: Any) -> str:
    """A short description of a value for error messages: shape/dtype/device for tensors."""
    if isinstance(value, Tensor):
        if value.numel() <= 6:
            vals = value.detach().cpu().tolist()
            return f"tensor({vals}, shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, device={value.device})"
    return repr(value)


def check_positive(name: str, value: Any, *, fix: str = "") -> float:
    """``value`` must be a finite real number > 0; returns it as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a positive real number, got {describe(value)}. {fix}".strip()) from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"`{name}` must be finite and > 0, got {v!r}. {fix}".strip())
    return v


def check_nonnegative_int(name: str, value: Any, *, minimum: int = 0, fix: str = "") -> int:
    """``value`` must be an integer ≥ ``minimum``."""
    integral_tensor = isinstance(value, Tensor) and value.ndim == 0 and not value.is_floating_point()
    if isinstance(value, bool) or not (isinstance(value, int) or integral_tensor):
        raise TypeError(f"`{name}` must be an integer >= {minimum}, got {describe(value)}. {fix}".strip())
    v = int(value)
    if v < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}, got {v}. {fix}".strip())
    return v


def check_state(name: str, y: Any, *, dim: int | None = None) -> Tensor:
    """A state tensor of shape ``(*batch, n)``: floating point, at least 1-D, all finite."""
    if not isinstance(y, Tensor):
        raise TypeError(
            f"`{name}` must be a torch.Tensor of shape (*batch, n), got {type(y).__name__}. "
            f"Convert it with torch.as_tensor({name}, dtype=torch.float64)."
        )
    if y.ndim < 1:
        raise ValueError(
            f"`{name}` must have shape (*batch, n) with at least one dimension, got a 0-d tensor "
            f"{describe(y)}. Use {name}.reshape(1) for a scalar state."
        )
    if not (y.is_floating_point() or y.is_complex()):
        raise TypeError(
            f"`{name}` must be a floating-point tensor, got dtype={y.dtype}. "
            f"Use {name}.to(torch.float64) (or float32)."
        )
    if dim is not None and y.shape[-1] != dim:
        raise ValueError(
            f"`{name}` must have last dimension n={dim} (the system's state size), got shape "
            f"{tuple(y.shape)}. Pass a state of shape (*batch, {dim})."
        )
    if y.numel() and not bool(torch.isfinite(y).all()):
        bad = (~torch.isfinite(y)).reshape(-1, y.shape[-1]).any(-1).nonzero().flatten().tolist()
        raise ValueError(
            f"`{name}` must be finite, but the batch members at flat indices {bad[:10]} hold NaN "
            f"or inf ({describe(y)}). Remove or replace those members."
        )
    return y


def check_same_device_dtype(ref_name: str, ref: Tensor, **others: Tensor | None) -> None:
    """Every tensor in ``others`` must share ``ref``'s device and dtype."""
    for name, t in others.items():
        if t is None:
            continue
        if t.device != ref.device:
            raise ValueError(
                f"`{name}` is on device {t.device} but `{ref_name}` is on {ref.device}; all tensors of "
                f"one solve must live on one device. Move it with {name}.to({ref_name}.device)."
            )
        if t.is_floating_point() and t.dtype != ref.dtype:
            raise TypeError(
                f"`{name}` has dtype {t.dtype} but `{ref_name}` has dtype {ref.dtype}; ngcdyn does not "
                f"promote dtypes implicitly. Convert with {name}.to({ref_name}.dtype)."
            )
