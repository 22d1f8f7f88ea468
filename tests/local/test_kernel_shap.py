"""The Kernel SHAP core against brute-force Shapley values and against the shap library."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import shap

from textexplain.explainer import kernel_shap


def value_function(m: int, k: int, seed: int):
    """A non-additive game with K outputs: pairwise interactions and a saturating sum."""
    rng = np.random.default_rng(seed)
    w, pair = rng.normal(size=(m, k)), rng.normal(scale=0.5, size=(m, m, k))

    def f(z: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(z).astype(float)
        linear = z @ w.reshape(m, k)
        inter = np.einsum("ni,nj,ijk->nk", z, z, pair)
        return np.tanh(linear + inter)

    return f


def brute_force_shapley(f, m: int) -> np.ndarray:
    phi = np.zeros((m, f(np.zeros(m)).shape[1]))
    for i in range(m):
        others = [j for j in range(m) if j != i]
        for size in range(m):
            for subset in itertools.combinations(others, size):
                z = np.zeros(m)
                z[list(subset)] = 1
                with_i = z.copy()
                with_i[i] = 1
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[i] += weight * (f(with_i)[0] - f(z)[0])
    return phi


def solve_for(f, m: int, num_samples: int, seed: int = 0) -> np.ndarray:
    masks, weights = kernel_shap.coalitions(m, num_samples, np.random.default_rng(seed))
    return kernel_shap.solve(masks, weights, f(masks), f(np.ones(m))[0], f(np.zeros(m))[0])


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 10])
def test_full_enumeration_equals_brute_force_shapley(m):
    f = value_function(m, 3, seed=m)
    phi = solve_for(f, m, num_samples=10_000)
    np.testing.assert_allclose(phi, brute_force_shapley(f, m), atol=1e-6)
    np.testing.assert_allclose(phi.sum(axis=0), f(np.ones(m))[0] - f(np.zeros(m))[0], atol=1e-9)


def test_sample_count_matches_clarify():
    assert kernel_shap.sample_count(3, 1000) == 6
    assert kernel_shap.sample_count(12, 1000) == 1000
    assert kernel_shap.sample_count(1, 1000) == 0
    masks, _ = kernel_shap.coalitions(12, 999, np.random.default_rng(0))
    assert masks.shape == (999, 12)
    assert not masks.all(axis=1).any()
    assert masks.any(axis=1).all()


def test_sampled_estimate_is_additive_and_agrees_with_shap_kernel_explainer():
    m, k, n = 12, 2, 2000
    f = value_function(m, k, seed=42)
    exact = brute_force_shapley(f, m)
    ours = solve_for(f, m, n, seed=1)
    np.testing.assert_allclose(ours.sum(axis=0), f(np.ones(m))[0] - f(np.zeros(m))[0], atol=1e-9)
    np.random.seed(0)  # shap samples with numpy's global generator
    explainer = shap.KernelExplainer(f, np.zeros((1, m)))
    theirs = np.array(explainer.shap_values(np.ones((1, m)), nsamples=n, l1_reg=False, silent=True)).reshape(m, k)
    # stated tolerance: each estimate within 0.05 of the exact values, so within 0.1 of each other (outputs in [-1, 1])
    assert np.abs(ours - exact).max() < 0.05
    assert np.abs(theirs - exact).max() < 0.05
    assert np.abs(ours - theirs).max() < 0.1
