"""The abstract system interfaces: autodiff Jacobians with batched parameters and times."""

import torch

from ngcdyn.systems import AbstractVectorField, GroundTruth, autodiff_jacobian


class _Scaled(AbstractVectorField):
    """dy/dt = a_b · t · y² with a per-member parameter a (shape (*batch, 1))."""

    dim = 2
    ground_truth = GroundTruth()

    def __init__(self, a):
        self.a = a

    def _call_impl(self, t, y, args):
        tt = t[..., None] if t.ndim else t
        return self.a * tt * y * y


def test_autodiff_jacobian_keeps_batched_parameters_paired():
    # Exact: d/dy (a t y²) = diag(2 a t y), member by member.
    a = torch.tensor([[[1.0], [2.0], [3.0]], [[-1.0], [0.5], [4.0]]])  # (2, 3, 1)
    y = torch.randn(2, 3, 2)
    t = torch.tensor([[0.5, 1.0, 2.0], [1.5, -1.0, 3.0]])  # per-member times (2, 3)
    J = _Scaled(a).jacobian(t, y)
    want = torch.diag_embed(2 * a * t[..., None] * y)
    torch.testing.assert_close(J, want, rtol=1e-14, atol=1e-14)
    # Scalar time, and the free function.
    J0 = _Scaled(a).jacobian(0.7, y)
    torch.testing.assert_close(J0, torch.diag_embed(2 * a * 0.7 * y), rtol=1e-14, atol=1e-14)
    J1 = autodiff_jacobian(lambda v: a * v**3, y)
    torch.testing.assert_close(J1, torch.diag_embed(3 * a * y**2), rtol=1e-14, atol=1e-14)


def test_autodiff_jacobian_of_a_coupled_field():
    # f(y) = M y with M (n, n): the Jacobian is M for every member.
    M = torch.randn(4, 4)
    y = torch.randn(5, 4)
    J = autodiff_jacobian(lambda v: v @ M.T, y)
    torch.testing.assert_close(J, M.expand(5, 4, 4), rtol=1e-14, atol=1e-14)
