"""Kernel SHAP for one record with K outputs: coalitions, kernel weights, constrained least squares.

With M units there are 2^M - 2 non-trivial coalitions. When ``num_samples`` covers them all, every
coalition is used with its exact kernel weight and the solution equals the exact Shapley values.
Otherwise ``num_samples`` coalitions are drawn: a size s with probability proportional to the
kernel's total weight for that size, then a uniform subset of that size, each drawn together with
its complement; drawn coalitions then count equally. The efficiency constraint (attributions sum
to f(all) - f(none)) is imposed exactly by eliminating the last unit, as Kernel SHAP does.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def sample_count(m: int, num_samples: int) -> int:
    """How many coalitions Clarify evaluates for M units: min(num_samples, 2^M - 2)."""
    if m < 2:
        return 0
    return min(num_samples, 2**m - 2) if m < 63 else num_samples


def _kernel_weight(m: int, s: int) -> float:
    return (m - 1) / (math.comb(m, s) * s * (m - s))


def coalitions(m: int, num_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(masks of shape (n, M) with True = unit kept, weights of shape (n,))."""
    n = sample_count(m, num_samples)
    if n == 0:
        return np.zeros((0, m), dtype=bool), np.zeros(0)
    if n == 2**m - 2:  # full enumeration: exact
        masks = np.array([bits for bits in itertools.product((False, True), repeat=m)][1:-1], dtype=bool)
        sizes = masks.sum(axis=1)
        weights = np.array([_kernel_weight(m, int(s)) for s in sizes])
        return masks, weights
    sizes = np.arange(1, m)
    size_weight = (m - 1) / (sizes * (m - sizes))
    chosen = rng.choice(sizes, size=(n + 1) // 2, p=size_weight / size_weight.sum())
    masks = np.zeros((2 * len(chosen), m), dtype=bool)
    for i, s in enumerate(chosen):
        masks[2 * i, rng.choice(m, size=int(s), replace=False)] = True
        masks[2 * i + 1] = ~masks[2 * i]
    return masks[:n], np.ones(n)


def solve(
    masks: np.ndarray, weights: np.ndarray, values: np.ndarray, f_all: np.ndarray, f_none: np.ndarray
) -> np.ndarray:
    """Attributions (M, K) from coalition values (n, K) by weighted least squares with sum = f_all - f_none."""
    m = masks.shape[1]
    total = f_all - f_none
    if m == 0:
        return np.zeros((0, len(total)))
    if m == 1:
        return total[None, :]
    z = masks.astype(np.float64)
    y = values - f_none  # (n, K)
    # eliminate the last unit: phi_M = total - sum(phi_1..M-1)
    a = z[:, :-1] - z[:, -1:]
    b = y - z[:, -1:] * total[None, :]
    sw = np.sqrt(weights)[:, None]
    head, *_ = np.linalg.lstsq(a * sw, b * sw, rcond=None)
    return np.vstack([head, total - head.sum(axis=0)])
