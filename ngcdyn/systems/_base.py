"""Abstract interfaces for vector fields and maps, and the ground truth they carry.

Rules for implementers of :class:`AbstractVectorField` (and, with ``x`` for ``y``, of
:class:`AbstractMap`):

1. Implement ``_call_impl(t, y, args)``: ``y`` has shape ``(*batch, n)``; ``t`` is a tensor that
   broadcasts against ``y[..., 0]`` (0-d, or one time per batch member, shape ``(*batch,)``).
   Return ``dy/dt`` with the shape, dtype and device of ``y``. No validation, no in-place writes
   to ``y`` (the solvers call this in their hot loop and may backpropagate through it).
2. Declare ``dim`` (the state size n) and ``ground_truth`` (a :class:`GroundTruth`, with ``None``
   for every quantity that is not known exactly).
3. If the system has an analytic Jacobian, set ``has_analytic_jacobian = True`` and implement
   ``_jacobian_impl`` returning ``(*batch, n, n)``; otherwise ``jacobian`` falls back to autodiff.
   If it can apply its Jacobian to vectors more cheaply than forming it (structure), set
   ``has_structured_jvp = True`` and override ``jvp(t, y, v, args)`` (``J v``, with ``y`` and ``v``
   broadcastable, so ``k`` vectors can sit in an extra batch dimension); tangent dynamics
   (Lyapunov analysis) then use it instead of the dense Jacobian.
4. If the system has an exact solution, set ``has_exact_solution = True`` and implement
   ``_exact_solution_impl(t, y0, args)`` returning the state at time ``t`` (``t`` broadcast like in
   rule 1) from ``y0`` given at time 0.
5. Parameters that users may batch over live in the system as tensors whose leading dimensions
   broadcast against ``*batch``.
6. Concrete systems are leaves: do not subclass them to tweak behaviour; wrap or construct anew.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = ["GroundTruth", "AbstractVectorField", "AbstractMap", "autodiff_jacobian"]


@dataclass(frozen=True)
class GroundTruth:
    """What is known exactly (or from a cited reference) about a system.

    Attributes
    ----------
    lyapunov_exponents
        The Lyapunov spectrum in descending order (flows: per unit time; maps: per iteration),
        or ``None`` if unknown.
    contraction_rate
        ``c`` such that the system contracts at rate ``c`` in the Euclidean norm (all
        ``mu_2(J) <= -c``), or ``None``; negative values mean expansion is possible.
    kaplan_yorke_dimension
        The Kaplan–Yorke dimension, or ``None``.
    reference
        Where the numbers come from (paper, page or derivation).
    params
        The reference parameters the numbers belong to.
    """

    lyapunov_exponents: tuple[float, ...] | None = None
    contraction_rate: float | None = None
    kaplan_yorke_dimension: float | None = None
    reference: str = ""
    params: dict[str, Any] = field(default_factory=dict)


def autodiff_jacobian(fn, y: Tensor) -> Tensor:
    """Jacobian ``d fn(y) / d y`` of shape ``(*batch, n, n)`` for a batched, member-wise ``fn``.

    ``fn`` maps ``(*batch, n) -> (*batch, n)`` and acts member by member (member ``b`` of the
    output depends only on member ``b`` of the input). Column ``j`` is the forward-mode product
    ``J e_j``, computed for the whole batch at once, so ``fn`` is always called with the full
    batch and any batched parameters stay paired with their states. Cost: n JVPs of the batch
    (vectorised with ``torch.func.vmap``).

    Examples
    --------
    >>> import torch
    >>> scale = torch.tensor([[1.0], [2.0]])                 # a per-member parameter
    >>> J = autodiff_jacobian(lambda v: scale * v**2, torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
    >>> J[1]
    tensor([[ 4.,  0.],
            [ 0., 12.]])
    """
    n = y.shape[-1]
    basis = torch.eye(n, dtype=y.dtype, device=y.device)  # (n, n): row j is e_j
    tangents = basis.reshape(n, *([1] * (y.ndim - 1)), n).expand(n, *y.shape)  # (n, *batch, n)

    def column(v: Tensor) -> Tensor:
        return torch.func.jvp(fn, (y,), (v,))[1]

    cols = torch.func.vmap(column)(tangents)  # (n, *batch, n): cols[j, ..., i] = d f_i / d y_j
    return cols.movedim(0, -1)


class AbstractVectorField(abc.ABC):
    """A vector field ``dy/dt = f(t, y, args)`` acting on states of shape ``(*batch, n)``.

    Call it like the plain function signature every ngcdyn solver accepts:
    ``f(t, y, args=None)``. See the module docstring for the rules implementers follow.
    """

    dim: int
    ground_truth: GroundTruth
    has_analytic_jacobian: ClassVar[bool] = False
    has_structured_jvp: ClassVar[bool] = False
    has_exact_solution: ClassVar[bool] = False

    def __call__(self, t: Tensor | float, y: Tensor, args: Any = None) -> Tensor:
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        return self._call_impl(t, y, args)

    @abc.abstractmethod
    def _call_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        """The vector field itself (rule 1)."""

    def jacobian(self, t: Tensor | float, y: Tensor, args: Any = None) -> Tensor:
        """``d f / d y`` at ``(t, y)``, shape ``(*batch, n, n)``: analytic if available, else autodiff."""
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        if self.has_analytic_jacobian:
            return self._jacobian_impl(t, y, args)
        return autodiff_jacobian(lambda v: self._call_impl(t, v, args), y)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} declares has_analytic_jacobian=True but does not implement "
            "_jacobian_impl."
        )

    def jvp(self, t: Tensor | float, y: Tensor, v: Tensor, args: Any = None) -> Tensor:
        """Jacobian-vector product ``J(t, y) v`` (forward-mode autodiff unless overridden, rule 3)."""
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=y.dtype, device=y.device)
        y, v = torch.broadcast_tensors(y, v)
        return torch.func.jvp(lambda u: self._call_impl(t, u, args), (y,), (v,))[1]

    def exact_solution(self, t: Tensor | float, y0: Tensor, args: Any = None) -> Tensor:
        """The exact state at time ``t`` from ``y0`` at time 0 (rule 4).

        Raises
        ------
        NotImplementedError
            If the system has no exact solution (``has_exact_solution`` is False).
        """
        if not self.has_exact_solution:
            raise NotImplementedError(
                f"{type(self).__name__} has no exact solution set; compare against a reference "
                "solve instead (e.g. scipy DOP853 at rtol=atol=1e-12)."
            )
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=y0.dtype, device=y0.device)
        return self._exact_solution_impl(t, y0, args)

    def _exact_solution_impl(self, t: Tensor, y0: Tensor, args: Any) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"


class AbstractMap(abc.ABC):
    """A discrete-time map ``x_{k+1} = F(x_k, args)`` acting on states of shape ``(*batch, n)``.

    Same rules as :class:`AbstractVectorField`, without time: implement ``_call_impl(x, args)``
    and, optionally, ``_jacobian_impl(x, args)``.
    """

    dim: int
    ground_truth: GroundTruth
    has_analytic_jacobian: ClassVar[bool] = False

    def __call__(self, x: Tensor, args: Any = None) -> Tensor:
        return self._call_impl(x, args)

    @abc.abstractmethod
    def _call_impl(self, x: Tensor, args: Any) -> Tensor:
        """The map itself."""

    def jacobian(self, x: Tensor, args: Any = None) -> Tensor:
        """``d F / d x`` at ``x``, shape ``(*batch, n, n)``: analytic if available, else autodiff."""
        if self.has_analytic_jacobian:
            return self._jacobian_impl(x, args)
        return autodiff_jacobian(lambda v: self._call_impl(v, args), x)

    def _jacobian_impl(self, x: Tensor, args: Any) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} declares has_analytic_jacobian=True but does not implement "
            "_jacobian_impl."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim})"
