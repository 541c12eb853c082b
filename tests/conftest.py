"""Test configuration: float64 by default, seeded RNGs, Hypothesis profiles, tier markers.

Hypothesis profiles (select with HYPOTHESIS_PROFILE=dev|ci|thorough; CI sets CI=true → "ci"):
- dev: few examples, fast feedback;
- ci: the default number of examples, derandomised so CI runs are reproducible;
- thorough: many examples, for occasional deep runs.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=15, deadline=None)
settings.register_profile(
    "ci", max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

torch.set_default_dtype(torch.float64)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same RNG state and in float64."""
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(prev)


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
