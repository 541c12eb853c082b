# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 01 — the dynamics of neuronal groups
#
# This tutorial builds a small network in ngcdyn's continuous-time reading of *neuronal group
# communication* (NGC; Pei, Huang & Wang 2025, arXiv:2510.16851), simulates a batch of
# trajectories, looks at the signals the groups exchange, and computes two exact facts about the
# network without ever forming its dense weight matrix: the spectrum of its linearisation and a
# contraction bound.
#
# **The model.** `N` neurons are split into `G` groups, `x = (x_1, ..., x_G)` with
# `x_g` in `R^{n_g}`. Every neuron carries two small vectors in `R^r`:
#
# - a *sender state* (row of `B_g`, shape `(n_g, r)`): how the neuron contributes to what its
#   group broadcasts;
# - a *receiver state* (row of `A_g`, shape `(n_g, r)`): how the neuron reads what its group
#   receives.
#
# Group `h` broadcasts the `r`-dimensional signal `s_h = B_h^T phi(x_h)`, where `phi` is the gain
# (transfer function, here `tanh`) applied to each neuron. A *channel* `C_gh` (`r x r`) carries
# group `h`'s signal to group `g` (`C_gg` is the group talking to itself). Each group relaxes with
# its own time constant `tau_g`:
#
#     tau_g dx_g/dt = -x_g + A_g sum_h C_gh B_h^T phi(x_h)
#
# The weight between neuron `i` of group `g` and neuron `j` of group `h` is the interaction
# `<A_g[i], C_gh B_h[j]>` of two neuronal states: the effective weight matrix is `W = A C B^T`
# with rank at most `G r`. ngcdyn never builds `W` to evaluate the right-hand side: a broadcast,
# a mixing and a read-out cost `O(N r + G^2 r^2)` per state instead of `O(N^2)`.
#
# The definitions here are ngcdyn's own (see `theory/01_ngc_system.md`), consistent with the
# paper's claims; they are not taken from the paper's body.

# %%
import math
import os
import tempfile
from pathlib import Path

import torch
from scipy.optimize import linear_sum_assignment

import ngcdyn as nd
from ngcdyn import plotting
from ngcdyn.systems import NGCSystem

torch.manual_seed(0)
DTYPE = torch.float64
OUT = Path(os.environ.get("NGCDYN_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="ngcdyn-tutorial01-"))
OUT.mkdir(parents=True, exist_ok=True)
print("figures go to", OUT)

# %% [markdown]
# ## 1. A network of three groups
#
# `NGCSystem.random` draws states `A, B ~ N(0, 1/r)` and channels `C ~ N(0, g^2/N)`, so every
# entry of `W` has variance `g^2/N` — the scaling of the classic random rate network
# `dx/dt = -x + J tanh x`. We give the groups different time constants: group 2 is slow, group 3
# fast.

# %%
G, n, r = 3, 10, 2
gen = torch.Generator().manual_seed(0)
tau = torch.tensor([1.0, 2.0, 0.5], dtype=DTYPE)
system = NGCSystem.random(G, n, r, gain=1.5, tau=tau, generator=gen, dtype=DTYPE)
A, B, C = system.states()
print(system)
print("A:", tuple(A.shape), " B:", tuple(B.shape), " C:", tuple(C.shape))
print("parameters: states + channels =", A.numel() + B.numel() + C.numel(),
      "numbers; the dense W would hold", system.dim**2)

# %% [markdown]
# ## 2. The structured right-hand side is the dense one
#
# `NGCSystem.dense_rhs` evaluates `diag(1/tau)(-x + W phi(x))` with the materialised `W`; it is
# there for checks like this one. The two agree to rounding.

# %%
x_test = torch.randn(16, system.dim, generator=gen, dtype=DTYPE)
rhs_max_err = float((system(0.0, x_test) - system.dense_rhs(0.0, x_test)).abs().max())
print(f"max |structured - dense| over 16 random states: {rhs_max_err:.2e}")

# %% [markdown]
# ## 3. Simulate a batch
#
# `nd.solve` integrates every member of the batch with its own adaptive step size (Dormand–Prince
# 5(4)). The solution carries one status per member and per-member statistics.

# %%
ts = torch.linspace(0.0, 30.0, 301, dtype=DTYPE)
x0 = 2.0 * torch.randn(8, system.dim, generator=gen, dtype=DTYPE)
sol = nd.solve(system, x0, ts, rtol=1e-7, atol=1e-9, throw=False)
all_succeeded = bool(sol.success.all())
print("status:", sol.status.tolist())
print("right-hand-side evaluations per member:", sol.stats["n_f_evals"].tolist())

# %% [markdown]
# The signals the groups broadcast, `s_g(t) = B_g^T tanh(x_g(t))`, are `r = 2` numbers per group:
# this is all the other groups ever see of group `g`.

# %%
starts = [sum(system.group_sizes[:g]) for g in range(G)]
signals = torch.stack(
    [torch.tanh(sol.ys[..., a:a + m]) @ B[a:a + m] for a, m in zip(starts, system.group_sizes)],
    dim=-2,
)  # (batch, T, G, r)
fig = plotting.plot_group_signals(ts, signals[0], title="group signals of member 0")
plotting.save_figure(fig, OUT / "group_signals.png")
fig = plotting.plot_neuron_traces(ts, sol.ys[0], group_sizes=system.group_sizes, per_group=3)
plotting.save_figure(fig, OUT / "neuron_traces.png")
final_speed = torch.linalg.vector_norm(system(ts[-1], sol.ys[:, -1]), dim=-1)
print("speed |dx/dt| at t = 30 per member:", [f"{v:.1e}" for v in final_speed.tolist()])

# %% [markdown]
# ## 4. The linear spectrum from a small problem
#
# For a linear gain (`phi = identity`) the network is `dx/dt = M x` with
# `M = diag(1/tau)(-I + W)`. Because `W = A C B^T` has rank at most `G r`, `N - G r` eigenvalues
# of `M` are simply `-1/tau_g` (directions that no group signal sees), and the others are the
# eigenvalues of a `(G r) x (G r)` matrix built from `B_g^T A_g`, `C_gh` and `tau`
# (`theory/02_linear_spectrum.md`). `NGCSystem.linear_spectrum` computes them this way; we compare
# with the dense eigenvalues, matching them one to one.

# %%
linear = NGCSystem(A, B, C, group_sizes=system.group_sizes, tau=tau, phi="identity")
ev_reduced = linear.linear_spectrum()
inv_tau = (1.0 / tau).repeat_interleave(n)
M = inv_tau[:, None] * (linear.materialize() - torch.eye(system.dim, dtype=DTYPE))
ev_dense = torch.linalg.eigvals(M)
cost = (ev_reduced[:, None] - ev_dense[None, :]).abs().numpy()
rows, cols = linear_sum_assignment(cost)
spectrum_max_err = float(cost[rows, cols].max())
print(f"reduced problem of size {G * r} instead of {system.dim}; "
      f"max |reduced - dense| = {spectrum_max_err:.2e}")
print("leading eigenvalues:", [f"{complex(z):.4f}" for z in ev_reduced[:4]])
print("stable origin:", bool(ev_reduced.real.max() < 0))
fig = plotting.plot_spectrum(ev_reduced, title="spectrum of the linear network")
plotting.save_figure(fig, OUT / "linear_spectrum.png")

# %% [markdown]
# ## 5. A contraction certificate
#
# The Jacobian of the network is `J = diag(1/tau)(-I + W diag(phi'(x)))`. Since `|tanh'| <= 1`,
# the Euclidean matrix measure obeys, at *every* state,
#
#     mu_2(J) <= -1/tau_max + ||diag(1/tau) W||_2 =: b,
#
# and `NGCSystem.contraction_bound` computes the norm from `(G r) x (G r)` factors. If `b < 0`,
# any two trajectories approach each other at least like `exp(b t)` (Lohmiller & Slotine 1998).
# Our network is far from that regime; with the channels scaled down 30-fold it is certified.

# %%
print("original network: bound b =", f"{float(system.contraction_bound().bound):.3f}")
weak = NGCSystem(A, B, C / 30, group_sizes=system.group_sizes, tau=tau, phi="tanh")
cert = weak.contraction_bound()
contraction_bound = float(cert.bound)
print(f"weak coupling: b = {contraction_bound:.4f}, certified = {bool(cert.certified)}")

pair = torch.stack([x0[0], x0[1]])  # two different initial states
sol_w = nd.solve(weak, pair, ts, rtol=1e-9, atol=1e-12)
dist = torch.linalg.vector_norm(sol_w.ys[0] - sol_w.ys[1], dim=-1)  # (T,)
# log d(t)/d(0) must stay below b t (up to the solver's error, far smaller than the margin here).
excess = torch.log(dist[1:] / dist[0]) - contraction_bound * ts[1:]
contraction_margin = float(excess.max())
print(f"max over t > 0 of log(d(t)/d(0)) - b t = {contraction_margin:.3e} (must be <= 0)")

fig, axes = plotting.new_figure(1, 1)
ax = axes[0, 0]
ax.semilogy(ts.numpy(), dist.numpy(), label="distance of two trajectories")
ax.semilogy(ts.numpy(), (dist[0] * torch.exp(contraction_bound * ts)).numpy(), "--",
            label=f"certified envelope exp({contraction_bound:.3f} t)")
ax.set_xlabel("t")
ax.legend()
plotting.save_figure(fig, OUT / "contraction.png")

# %% [markdown]
# ## Summary
#
# - The NGC network is a vector field `f(t, x)` like any other: `nd.solve` integrates batches of
#   it with per-member step control and status.
# - Groups exchange `r`-dimensional signals; the dense weight is never needed.
# - Its linear spectrum and a contraction bound come from `(G r)`-sized problems.
#
# Next: Lyapunov exponents of the same network (`ngcdyn.analysis.lyapunov_spectrum`, or
# `ngcdyn lyapunov ngc` on the command line).

# %%
figures = sorted(p.name for p in OUT.glob("*.png"))
print("figures:", figures)
