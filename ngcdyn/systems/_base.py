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
    """Jacobian ``d fn(y) / d y`` of shape ``(*batch, n, n)`` for a batched ``fn``.

    ``fn`` maps ``(*batch, n) -> (*batch, n)`` and acts member-wise. Computed with ``torch.func``
    (``vmap`` of ``jacfwd`` over a flattened batch), so the cost is n JVPs per member.
    """
    n = y.shape[-1]
    batch = y.shape[:-1]
    flat = y.reshape(-1, n)  # (B, n)

    def single(v: Tensor) -> Tensor:  # (n,) -> (n,)
        return fn(v.unsqueeze(0)).squeeze(0)

    jac = torch.func.vmap(torch.func.jacfwd(single))(flat)  # (B, n, n)
    return jac.reshape(*batch, n, n)


class AbstractVectorField(abc.ABC):
    """A vector field ``dy/dt = f(t, y, args)`` acting on states of shape ``(*batch, n)``.

    Call it like the plain function signature every ngcdyn solver accepts:
    ``f(t, y, args=None)``. See the module docstring for the rules implementers follow.
    """

    dim: int
    ground_truth: GroundTruth
    has_analytic_jacobian: ClassVar[bool] = False
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
        tt = t.expand(y.shape[:-1]) if t.ndim else t
        if t.ndim:
            # Per-member times: differentiate member-wise with its own t.
            n = y.shape[-1]
            flat_y = y.reshape(-1, n)
            flat_t = tt.reshape(-1)

            def single(ti: Tensor, yi: Tensor) -> Tensor:
                return self._call_impl(ti.reshape(1), yi.unsqueeze(0), args).squeeze(0)

            jac = torch.func.vmap(torch.func.jacfwd(single, argnums=1))(flat_t, flat_y)
            return jac.reshape(*y.shape, n)
        return autodiff_jacobian(lambda v: self._call_impl(t, v, args), y)

    def _jacobian_impl(self, t: Tensor, y: Tensor, args: Any) -> Tensor:
        raise NotImplementedError(
            f"{type(self).__name__} declares has_analytic_jacobian=True but does not implement "
            "_jacobian_impl."
        )

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
