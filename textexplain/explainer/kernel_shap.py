"""Kernel SHAP for one record with K outputs: which coalitions to score, their weights, the solver.

With M units there are 2^M - 2 non-trivial coalitions; Clarify scores ``min(num_samples, 2^M - 2)``
of them and so do we. Kernel SHAP's answer is the weighted least-squares fit over all coalitions
(weight of a coalition of size s: (M-1) / (C(M,s) s (M-s))); a budget below 2^M - 2 estimates
that objective from a sample. How the sample is drawn decides the error; here:

- **Strata by size, without repeats.** The budget is split over the sizes 1..M-1 in advance,
  then each size gets that many *distinct* coalitions, uniform among its C(M,s). A size whose
  share covers all of its coalitions is enumerated; this happens first to the small and large
  sizes, as in shap's KernelExplainer. Each coalition of size s carries weight W_s / k_s
  (W_s the kernel's total weight of the size, k_s the count drawn), so an enumerated size gets
  its exact kernel weights and a sampled one an unbiased estimate of its part of the objective.
- **Paired.** Every sampled coalition comes with its complement (sizes s and M-s get the same
  count), the antithetic sampling of Covert & Lee (2021); an odd budget leaves one coalition
  unpaired.
- **Share per size:** ``leverage`` gives every size the same share (the leverage scores of the
  Kernel SHAP regression are equal across sizes: Musco & Witter, 2024), ``kernel`` a share
  proportional to W_s (what KernelExplainer samples from), ``sqrt`` one in between. The default,
  ``leverage-ends``, first enumerates sizes 1 and M-1 (the heaviest, 2M coalitions) when they take
  at most half the budget, then shares the rest by leverage: the most accurate of the four on AG
  News in ``python -m bench compare`` (docs/local.md).
- **Exact** when the budget covers all 2^M - 2 coalitions: every one is used with its weight.

The efficiency constraint (attributions sum to f(all) - f(none)) is imposed exactly by
eliminating the last unit, as Kernel SHAP does. Under sampling a light ridge penalty towards the
equal split of f(all) - f(none) steadies small budgets (most of all when the budget is below or
near the number of units), fading as the budget grows; it is off under full enumeration.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

# ridge strength towards the equal split under sampling; chosen on AG News with bench compare (docs/local.md)
SHRINK = 0.1
ALLOCATIONS = ("leverage-ends", "leverage", "sqrt", "kernel")
DEFAULT_ALLOCATION = "leverage-ends"
# a size whose coalitions number at most this many times its draw is enumerated and subsampled,
# so drawing distinct coalitions never loops on collisions
_ENUMERATE_FACTOR = 4


def sample_count(m: int, num_samples: int) -> int:
    """How many coalitions Clarify evaluates for M units: min(num_samples, 2^M - 2)."""
    if m < 2:
        return 0
    return min(num_samples, 2**m - 2) if m < 63 else num_samples


def _kernel_weight(m: int, s: int) -> float:
    return (m - 1) / (math.comb(m, s) * s * (m - s))


def size_counts(m: int, n: int, allocation: str = DEFAULT_ALLOCATION) -> dict[int, int]:
    """How many distinct coalitions of each size 1..M-1 to score, summing to ``n`` (< 2^M - 2).

    Water-filling: each size wants a share of the budget proportional to its allocation weight;
    sizes whose wish exceeds their number of coalitions get all of them, the rest is shared again.
    Sizes s and M-s are one stratum of complementary pairs.
    """
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation {allocation!r} is not one of {ALLOCATIONS}")
    # strata: the smaller size s of each complementary pair (s, M-s); capacity in coalitions
    strata = list(range(1, m // 2 + 1))
    capacity = {s: (2 * math.comb(m, s) if 2 * s != m else math.comb(m, s)) for s in strata}
    power = {"leverage": 0.0, "sqrt": 0.5, "kernel": 1.0, "leverage-ends": 0.0}[allocation]
    share = {s: (s * (m - s)) ** -power * (2 if 2 * s != m else 1) for s in strata}
    full: set[int] = set()
    budget = n
    if allocation == "leverage-ends" and 2 * capacity[1] <= n and m > 2:
        full.add(1)  # sizes 1 and M-1 carry the most weight: enumerate them when they take at most half
        budget -= capacity[1]
    while True:
        open_ = [s for s in strata if s not in full]
        total = sum(share[s] for s in open_)
        saturated = [s for s in open_ if budget * share[s] / total >= capacity[s]]
        if not saturated:
            break
        for s in saturated:
            full.add(s)
            budget -= capacity[s]
    counts = {s: capacity[s] for s in full}
    open_ = [s for s in strata if s not in full]
    if open_:
        # whole pairs per stratum by largest remainder; an odd coalition left over goes unpaired
        total = sum(share[s] for s in open_)
        wish = {s: budget * share[s] / total / 2 for s in open_}
        pairs = {s: int(wish[s]) for s in open_}
        left = budget // 2 - sum(pairs.values())
        for s in sorted(open_, key=lambda s: (pairs[s] - wish[s], s))[:left]:
            pairs[s] += 1
        counts |= {s: 2 * p for s, p in pairs.items()}
        if budget % 2:
            room = [s for s in open_ if counts[s] < capacity[s]]
            counts[min(room, key=lambda s: (counts[s] / capacity[s], s))] += 1
    per_size: dict[int, int] = {}
    for s, c in counts.items():
        if 2 * s == m:
            per_size[s] = c
        else:  # the pairs' two sides; an unpaired extra is on the smaller size
            per_size[s], per_size[m - s] = (c + 1) // 2, c // 2
    return {s: per_size[s] for s in sorted(per_size) if per_size[s]}


def _draw(m: int, requests: list[tuple[int, int, bool]], rng: np.random.Generator) -> list[np.ndarray]:
    """Per request (s, k, fixed): ``k`` distinct uniform subsets of size ``s`` of range(m) as (k, m) masks;
    with ``fixed`` each holds unit 0. Requests that ask for a good part of their subsets are drawn from
    the enumerated list; the others all at once (one sort for every row), repeats drawn again."""
    out: list[np.ndarray | None] = [None] * len(requests)
    sampled = []
    for i, (s, k, fixed) in enumerate(requests):
        pool, size = (m - 1, s - 1) if fixed else (m, s)
        if math.comb(pool, size) > _ENUMERATE_FACTOR * k:
            sampled.append(i)
            continue
        offset = 1 if fixed else 0
        masks = np.zeros((k, m), dtype=bool)
        masks[:, 0] = fixed
        every = list(itertools.combinations(range(offset, pool + offset), size))
        for row, idx in zip(masks, rng.choice(len(every), size=k, replace=False), strict=True):
            row[list(every[idx])] = True
        out[i] = masks
    pending = {i: requests[i][1] for i in sampled}
    kept: dict[int, list[np.ndarray]] = {i: [] for i in sampled}  # blocks of rows, in the order drawn
    seen: set[bytes] = set()
    first_draw = True
    while pending:
        order = list(pending)
        sizes = np.repeat([requests[i][0] for i in order], [pending[i] for i in order])
        fixed = np.repeat([requests[i][2] for i in order], [pending[i] for i in order])
        keys = rng.random((len(sizes), m))
        keys[fixed, 0] = -1.0  # unit 0 always among the smallest keys
        kth = np.sort(keys, axis=1)[np.arange(len(sizes)), sizes - 1]
        candidates = keys <= kth[:, None]
        packed = np.ascontiguousarray(np.packbits(candidates, axis=1))
        if first_draw:
            # every request's rows are consecutive; keep each row's first occurrence (sizes differ between
            # requests, so a repeat is always within one), all at once: usually there is no repeat at all
            first_draw = False
            _, first = np.unique(packed.view(np.dtype((np.void, packed.shape[1]))), return_index=True)
            ends = np.cumsum([pending[i] for i in order]).tolist()
            if len(first) == len(packed):
                for i, stop in zip(order, ends, strict=True):
                    out[i] = candidates[stop - pending[i] : stop]
                return out
            keep = np.zeros(len(packed), dtype=bool)
            keep[first] = True
            for i, stop in zip(order, ends, strict=True):
                start = stop - pending[i]
                kept[i].append(candidates[start:stop][keep[start:stop]])
                pending[i] -= len(kept[i][-1])
                if pending[i]:  # drawn again below: remember what this request holds
                    seen.update(map(bytes, packed[start:stop][keep[start:stop]]))
        else:
            owners = np.repeat(order, [pending[i] for i in order])
            for row, owner, key in zip(candidates, owners, map(bytes, packed), strict=True):
                if key not in seen:
                    seen.add(key)
                    kept[owner].append(row[None, :])
                    pending[owner] -= 1
        pending = {i: left for i, left in pending.items() if left}
    for i in sampled:
        out[i] = np.concatenate(kept[i]) if kept[i] else np.zeros((0, m), dtype=bool)
    return out


def coalitions(
    m: int, num_samples: int, rng: np.random.Generator, allocation: str = DEFAULT_ALLOCATION
) -> tuple[np.ndarray, np.ndarray]:
    """(masks of shape (n, M) with True = unit kept, weights of shape (n,)); no coalition twice."""
    n = sample_count(m, num_samples)
    if n == 0:
        return np.zeros((0, m), dtype=bool), np.zeros(0)
    if n == 2**m - 2:  # full enumeration: exact
        masks = np.array(list(itertools.product((False, True), repeat=m))[1:-1], dtype=bool)
        sizes = masks.sum(axis=1)
        weights = np.array([_kernel_weight(m, int(s)) for s in sizes])
        return masks, weights
    counts = size_counts(m, n, allocation)
    strata = [s for s in range(1, m // 2 + 1) if counts.get(s, 0) or counts.get(m - s, 0)]
    # the middle size pairs within itself: draw the member holding unit 0, pair it with the other
    requests = [(s, (counts[s] + 1) // 2, True) if 2 * s == m else (s, counts[s], False) for s in strata]
    blocks, weight, count = [], [], []  # each block's rows share one weight
    for s, reps in zip(strata, _draw(m, requests, rng), strict=True):
        total = (m - 1) / (s * (m - s))  # the kernel's total weight of size s (and of M-s)
        k_small, k_large = counts.get(s, 0), counts.get(m - s, 0)
        if 2 * s == m:
            block = np.vstack([reps, ~reps])[:k_small] if k_small % 2 == 0 else np.vstack([reps, ~reps[:-1]])
            blocks.append(block)
            weight.append(total / k_small)
            count.append(len(block))
            continue
        blocks += [reps, ~reps[:k_large]]
        weight += [total / k_small, total / max(k_large, 1)]
        count += [k_small, k_large]
    return np.vstack(blocks), np.repeat(np.array(weight), count)


def solve(
    masks: np.ndarray,
    weights: np.ndarray,
    values: np.ndarray,
    f_all: np.ndarray,
    f_none: np.ndarray,
    shrink: float = SHRINK,
) -> np.ndarray:
    """Attributions (M, K) from coalition values (n, K) by weighted least squares with sum = f_all - f_none.

    Under sampling, a ridge penalty of strength ``shrink`` * (M / n) * (mean diagonal of the normal
    equations) pulls the attributions towards the equal split of f_all - f_none: it fades as the
    budget grows and is off when the coalitions are all there (the values are then exact).
    """
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
    weighted = a * weights[:, None]
    # normal equations: an (M-1)-square system instead of an n-row one; lstsq keeps the minimum-norm
    # answer when the budget is below M-1. BLAS on one thread: these matrices are small, and on a
    # busy machine its threads cost more than the arithmetic (measured: 8 ms against 0.6 ms a record)
    with _one_blas_thread():
        gram, rhs = weighted.T @ a, weighted.T @ b
        n = len(masks)
        if shrink and (m >= 63 or n < 2**m - 2):
            strength = shrink * (m / max(n, 1)) * float(np.mean(np.diag(gram)))
            # penalty on every attribution, the last one being total - sum(head)
            gram = gram + strength * (np.eye(m - 1) + 1.0)
            rhs = rhs + strength * total[None, :]
        head, *_ = np.linalg.lstsq(gram, rhs, rcond=None)
    return np.vstack([head, total - head.sum(axis=0)])


@functools.cache
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread():
    return _blas_controller().limit(limits=1, user_api="blas")
