"""Shape aliases used in annotations across ngcdyn.

Shapes are written in the docstrings as ``(*batch, n)`` etc.; these aliases give them one name in
the code. ``*batch`` is any number of leading batch dimensions (possibly none).
"""

from __future__ import annotations

from typing import Any, Callable, Union

import torch
from torch import Tensor

#: A state ``y`` of shape ``(*batch, n)``.
State = Tensor
#: Times: a 0-d tensor, or one time per batch member, shape ``(*batch,)``.
Time = Tensor
#: A vector field ``f(t, y, args) -> dy/dt`` with ``y`` of shape ``(*batch, n)``; ``t`` is a
#: tensor broadcastable against ``y[..., 0]`` (0-d or ``(*batch,)``).
VectorFieldFn = Callable[[Tensor, Tensor, Any], Tensor]
#: A map ``F(x, args) -> x_next`` with ``x`` of shape ``(*batch, n)``.
MapFn = Callable[[Tensor, Any], Tensor]
#: Anything torch.as_tensor accepts.
ArrayLike = Union[Tensor, float, int, "list[float]", "tuple[float, ...]"]

__all__ = ["State", "Time", "VectorFieldFn", "MapFn", "ArrayLike", "Tensor", "torch"]
