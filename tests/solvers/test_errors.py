"""Bad input gets a clear error naming the argument, the rule, the value and the fix."""

import pytest
import torch

import ngcdyn as nd

f = lambda t, y, a: -y  # noqa: E731
Y0 = torch.ones(2, 3, dtype=torch.float64)
TS = torch.linspace(0, 1, 4, dtype=torch.float64)


def test_y0_not_tensor():
    with pytest.raises(TypeError, match=r"`y0` must be a torch.Tensor.*torch.as_tensor"):
        nd.solve(f, [[1.0, 2.0]], TS)


def test_y0_scalar():
    with pytest.raises(ValueError, match=r"`y0` must have shape \(\*batch, n\).*reshape\(1\)"):
        nd.solve(f, torch.tensor(1.0, dtype=torch.float64), TS)


def test_y0_nonfinite_names_members():
    y0 = Y0.clone()
    y0[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"`y0` must be finite.*flat indices \[1\]"):
        nd.solve(f, y0, TS)


def test_y0_integer_dtype():
    with pytest.raises(TypeError, match=r"`y0` must be a floating-point tensor, got dtype=torch.int64"):
        nd.solve(f, torch.ones(2, 3, dtype=torch.int64), TS)


def test_t_eval_dtype_mismatch():
    with pytest.raises(TypeError, match=r"`t_eval` has dtype torch.float32 but `y0` has dtype torch.float64"):
        nd.solve(f, Y0, TS.float())


def test_t_eval_not_monotone():
    with pytest.raises(ValueError, match=r"`t_eval` must be strictly monotone.*Sort it"):
        nd.solve(f, Y0, torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64))


def test_t_eval_wrong_batch_shape():
    with pytest.raises(ValueError, match=r"per-member `t_eval` must have shape \(\*batch, T\) = \(2,\) \+ \(T,\)"):
        nd.solve(f, Y0, torch.zeros(3, 4, dtype=torch.float64) + TS)


def test_t1_before_t0_without_negative_direction():
    with pytest.raises(ValueError, match=r"`t_eval` starts behind `t0`.*decreasing `t_eval`"):
        nd.solve(f, Y0, TS, t0=2.0)


@pytest.mark.parametrize("name,value", [("rtol", 0.0), ("atol", -1e-9), ("rtol", float("nan"))])
def test_nonpositive_tolerances(name, value):
    with pytest.raises(ValueError, match=rf"`{name}` must be finite and > 0, got"):
        nd.solve(f, Y0, TS, **{name: value})


def test_unknown_method():
    with pytest.raises(ValueError, match=r"`method` must be one of \['bosh3', 'dopri5'.*got 'dopri'"):
        nd.solve(f, Y0, TS, method="dopri")


def test_fixed_method_needs_dt():
    with pytest.raises(ValueError, match=r"'rk4' has no embedded error estimate.*pass `dt`"):
        nd.solve(f, Y0, TS, method="rk4")


def test_unknown_backend_and_option():
    with pytest.raises(ValueError, match=r"`backend` must be one of \('ngcdyn', 'torchdiffeq'\)"):
        nd.solve(f, Y0, TS, backend="jax")
    with pytest.raises(TypeError, match=r"unexpected keyword argument 'max_step'"):
        nd.solve(f, Y0, TS, max_step=10)


def test_torchdiffeq_needs_shared_grid():
    te = torch.stack([TS, 2 * TS])
    with pytest.raises(ValueError, match=r"backend='torchdiffeq' needs one `t_eval` grid.*backend='ngcdyn'"):
        nd.solve(f, Y0, te, backend="torchdiffeq")


def test_evaluate_without_dense():
    sol = nd.solve(f, Y0, TS)
    with pytest.raises(ValueError, match=r"dense=True"):
        sol.evaluate(0.5)


def test_rtol_below_precision_warns():
    with pytest.warns(UserWarning, match=r"`rtol`=1e-20 is below 100 × machine epsilon"):
        nd.solve(f, Y0, TS, rtol=1e-20)


@pytest.mark.gpu
def test_device_mismatch():
    with pytest.raises(ValueError, match=r"`t_eval` is on device cuda.*Move it"):
        nd.solve(f, Y0, TS.cuda())
