"""Our Kernel SHAP against shap's KernelExplainer and Partition explainer and LIME, at equal model budgets.

On AG News (bench/shared_sample.py: the folder AGNEWS_DIR names, read in place): a fastText model trained on
train.csv with the project's training code, scored in-process through the container's ``Classifier``. Each method
explains the predicted class of the same records through the same value function (units masked
with ``<UNK>`` exactly as the explainer builds its texts), with the same number of model
evaluations per record (the budget plus the full and the fully masked text):

- short texts (8-16 tokens): error against the exact Shapley values (all 2^M coalitions);
- long texts (more than 16 tokens): error against a reference from antithetic permutation
  sampling (its own standard error is printed: it is far below the errors measured);
- deletion AOPC: mean drop of the predicted class's probability when the top 10 %, 20 %, ...,
  50 % of the units by attribution are deleted (replaced by nothing);
- seed stability: mean over records of the largest difference between two seeds' attributions;
- time per record, model calls included (one thread, the same scorer for every method).

Usage: python -m bench compare [--quick] [--short 24] [--long 30] [--start 4644] [--budgets 100,300,1000]
       [--methods ...]
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench import shared_sample
from fasttext_server.model import Classifier
from textexplain import training
from textexplain.explainer import kernel_shap
from textexplain.explainer.explain import Template
from textexplain.explainer.units import Span, mask, split_units

BASELINE = "<UNK>"
SHORT = range(8, 17)
# explain.csv rows 0-4643 hold the 80 short and first 40 long records on which the estimator's budget share and
# shrinkage were chosen; the comparison reports the records after them (24 short texts remain)
HELD_OUT_FROM = 4644  # units: exact Shapley values need 2^M evaluations


@dataclass
class Game:
    """One record as a cooperative game: masks (n, M) -> model probabilities (n, K)."""

    text: str
    units: list[Span]
    score: Callable[[list[str]], np.ndarray]
    template: Template
    calls: int = 0

    @property
    def m(self) -> int:
        return len(self.units)

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        masks = np.atleast_2d(np.asarray(masks) > 0.5)
        self.calls += len(masks)
        return self.score(self.template.texts(masks))


def make_game(text: str, score) -> Game:
    units = split_units(text)
    return Game(text, units, score, Template(text, units, BASELINE))


# --- references -------------------------------------------------------------------------------


def exact_shapley(game: Game) -> np.ndarray:
    """(M, K) exact Shapley values from all 2^M coalitions."""
    m = game.m
    codes = np.arange(2**m)
    masks = (codes[:, None] >> np.arange(m)) & 1
    values = game(masks.astype(bool))
    sizes = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(m - s - 1) / math.factorial(m) for s in range(m)])
    phi = np.zeros((m, values.shape[1]))
    for i in range(m):
        without = codes[(codes >> i) & 1 == 0]
        phi[i] = (weight[sizes[without]][:, None] * (values[without | (1 << i)] - values[without])).sum(axis=0)
    return phi


def permutation_reference(game: Game, permutations: int, seed: int = 12345) -> tuple[np.ndarray, float]:
    """(M, K) Shapley values from antithetic permutation sampling, and the largest standard error."""
    m, rng = game.m, np.random.default_rng(seed)
    samples = []
    for _ in range(permutations // 2):
        order = rng.permutation(m)
        pair = []
        for perm in (order, order[::-1]):
            steps = np.zeros((m + 1, m), dtype=bool)
            for j, unit in enumerate(perm):
                steps[j + 1 :, unit] = True
            values = game(steps)
            contrib = np.zeros((m, values.shape[1]))
            contrib[perm] = values[1:] - values[:-1]
            pair.append(contrib)
        samples.append((pair[0] + pair[1]) / 2)
    stacked = np.array(samples)
    return stacked.mean(axis=0), float((stacked.std(axis=0, ddof=1) / math.sqrt(len(samples))).max())


# --- methods: each returns (M, K) or (M,) attributions for the class ``cls`` --------------------


def ours(allocation: str, shrink: float = kernel_shap.SHRINK):
    def run(game: Game, budget: int, seed: int, cls: int) -> np.ndarray:
        rng = np.random.default_rng([seed, 7])
        masks, weights = kernel_shap.coalitions(game.m, budget, rng, allocation)
        ends = game(np.array([np.ones(game.m), np.zeros(game.m)], dtype=bool))
        values = game(masks) if len(masks) else np.zeros((0, ends.shape[1]))
        return kernel_shap.solve(masks, weights, values, ends[0], ends[1], shrink)[:, cls]

    return run


def previous_coalitions(m: int, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A simpler sampler kept for comparison: sizes and subsets drawn with replacement, repeats scored."""
    sizes = np.arange(1, m)
    size_weight = 1 / (sizes * (m - sizes))
    chosen = rng.choice(sizes, size=(n + 1) // 2, p=size_weight / size_weight.sum())
    masks = np.zeros((2 * len(chosen), m), dtype=bool)
    for i, s in enumerate(chosen):
        masks[2 * i, rng.choice(m, size=int(s), replace=False)] = True
        masks[2 * i + 1] = ~masks[2 * i]
    return masks[:n], np.ones(n)


def previous_sampler(game: Game, budget: int, seed: int, cls: int) -> np.ndarray:
    """The simpler sampler's estimate (exact when the budget covers every coalition)."""
    m, rng = game.m, np.random.default_rng([seed, 7])
    n = kernel_shap.sample_count(m, budget)
    ends = game(np.array([np.ones(m), np.zeros(m)], dtype=bool))
    if n == 2**m - 2:
        masks, weights = kernel_shap.coalitions(m, budget, rng)
    else:
        masks, weights = previous_coalitions(m, n, rng)
    return kernel_shap.solve(masks, weights, game(masks), ends[0], ends[1])[:, cls]


def shap_kernel(l1_reg):
    def run(game: Game, budget: int, seed: int, cls: int) -> np.ndarray:
        import shap

        np.random.seed(seed)  # KernelExplainer draws from numpy's global generator
        explainer = shap.KernelExplainer(lambda z: game(z)[:, cls], np.zeros((1, game.m)))
        return np.asarray(explainer.shap_values(np.ones((1, game.m)), nsamples=budget, l1_reg=l1_reg, silent=True))[0]

    return run


def shap_partition(game: Game, budget: int, seed: int, cls: int) -> np.ndarray:
    """shap's Partition explainer (Owen values) over the token tree shap's Text masker builds."""
    import shap
    from shap.maskers._text import partition_tree

    segments = [u.text + gap for u, gap in zip(game.units, game.template.gaps[1:], strict=True)]
    masker = shap.maskers.Partition(np.zeros((1, game.m)), clustering=partition_tree(segments, []))
    explainer = shap.explainers.Partition(lambda z: game(z)[:, cls], masker)
    return np.asarray(explainer(np.ones((1, game.m)), max_evals=budget + 2, silent=True).values)[0]


def lime_text(game: Game, budget: int, seed: int, cls: int) -> np.ndarray:
    """LIME's text explainer on our units (positions, not bag of words), masking with <UNK>."""
    from lime.lime_text import LimeTextExplainer

    words = [u.text for u in game.units]
    explainer = LimeTextExplainer(
        split_expression=lambda _: words, bow=False, mask_string=BASELINE, random_state=seed, class_names=None
    )

    # LIME builds the texts itself; this gives them the same scorer and counts the calls
    def classify(texts):
        game.calls += len(texts)
        return game.score(list(texts))

    exp = explainer.explain_instance(game.text, classify, labels=(cls,), num_features=game.m, num_samples=budget + 2)
    phi = np.zeros(game.m)
    for index, weight in exp.local_exp[cls]:
        phi[index] = weight
    return phi


METHODS = {
    "ours": ours(kernel_shap.DEFAULT_ALLOCATION),
    "ours-leverage-only": ours("leverage"),
    "ours-kernel-share": ours("kernel"),
    "ours-no-shrink": ours(kernel_shap.DEFAULT_ALLOCATION, shrink=0.0),
    "previous": previous_sampler,
    "kernel-l1off": shap_kernel(False),
    "kernel-default": shap_kernel("num_features(10)"),
    "partition": shap_partition,
    "lime": lime_text,
}


# --- metrics ----------------------------------------------------------------------------------


def aopc(game: Game, phi: np.ndarray, cls: int, p_full: float) -> float:
    order = np.argsort(-phi, kind="stable")
    drops = []
    texts = []
    for share in (0.1, 0.2, 0.3, 0.4, 0.5):
        k = max(1, round(share * game.m))
        keep = np.ones(game.m, dtype=bool)
        keep[order[:k]] = False
        texts.append(mask(game.text, game.units, keep, ""))
    probs = game.score(texts)[:, cls]
    drops = p_full - probs
    return float(np.mean(drops))


def pick_records(texts: list[str], n_short: int, n_long: int, start: int = 0) -> tuple[list[str], list[str]]:
    short, long_ = [], []
    for text in texts[start:]:
        m = len(split_units(text))
        if m in SHORT and len(short) < n_short:
            short.append(text)
        elif m > SHORT.stop - 1 and len(long_) < n_long:
            long_.append(text)
        if len(short) >= n_short and len(long_) >= n_long:
            break
    return short, long_


def evaluate(methods, games, references, budgets, seeds) -> dict:
    """{(method, budget): metrics} over ``games`` against ``references``."""
    table = {}
    for name in methods:
        fn = METHODS[name]
        fn(games[0], budgets[0], 0, references[0][1])  # warm-up (imports, caches): not timed
        for budget in budgets:
            errors, rel, aopcs, stability, seconds, calls = [], [], [], [], [], []
            for game, (ref, cls, p_full) in zip(games, references, strict=True):
                runs = []
                for seed in seeds:
                    game.calls = 0
                    start = time.perf_counter()
                    phi = np.asarray(fn(game, budget, seed, cls), dtype=float).reshape(game.m)
                    seconds.append(time.perf_counter() - start)
                    calls.append(game.calls)
                    runs.append(phi)
                    errors.append(np.abs(phi - ref).max())
                    rel.append(np.linalg.norm(phi - ref) / max(np.linalg.norm(ref), 1e-12))
                aopcs.append(aopc(game, runs[0], cls, p_full))
                if len(runs) > 1:
                    stability.append(np.mean([np.abs(a - b).max() for a, b in itertools.combinations(runs, 2)]))
            table[name, budget] = {
                "max_err": float(np.mean(errors)),
                "max_err_median": float(np.median(errors)),
                "rel_l2": float(np.mean(rel)),
                "aopc": float(np.mean(aopcs)),
                "seed_diff": float(np.mean(stability)) if stability else float("nan"),
                "ms": 1000 * float(np.mean(seconds)),
                "calls": float(np.mean(calls)),
            }
    return table


def _num(value: float, width: int, digits: int) -> str:
    """A figure, or '>1e3' where an estimate blew up (shap's solver with fewer samples than units)."""
    return f"{value:>{width}.{digits}f}" if abs(value) < 1e3 else f"{'>1e3':>{width}}"


def print_table(title: str, table: dict, methods, budgets) -> None:
    print(f"\n{title}")
    print(
        f"{'method':<20}{'budget':>7}{'calls':>7}{'max|err|':>10}{'median':>9}{'rel L2':>9}{'AOPC':>7}"
        f"{'seed diff':>10}{'ms/rec':>8}"
    )
    for budget in budgets:
        for name in methods:
            r = table[name, budget]
            print(
                f"{name:<20}{budget:>7}{r['calls']:>7.0f}{_num(r['max_err'], 10, 4)}{r['max_err_median']:>9.4f}"
                f"{_num(r['rel_l2'], 9, 3)}{r['aopc']:>7.3f}{_num(r['seed_diff'], 10, 4)}{r['ms']:>8.1f}"
            )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench compare", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 + 2 records, two seeds: about a minute")
    parser.add_argument("--short", type=int, default=24, help="records with 8-16 units (exact reference)")
    parser.add_argument(
        "--start",
        type=int,
        default=HELD_OUT_FROM,
        help=f"first row of explain.csv to take records from (default {HELD_OUT_FROM}: the rows before it were used "
        "to choose the estimator's settings)",
    )
    parser.add_argument("--long", type=int, default=30, help="records with more than 16 units")
    parser.add_argument("--budgets", default="100,300,1000")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reference-permutations", type=int, default=2000)
    parser.add_argument("--methods", default=",".join(METHODS))
    args = parser.parse_args(argv)
    if args.quick:
        args.short, args.long, args.seeds, args.reference_permutations = 4, 2, 2, 300
    budgets = [int(b) for b in args.budgets.split(",")]
    methods = args.methods.split(",")
    try:
        import lime  # noqa: F401 - bench-only dependency (requirements-bench.txt)
    except ImportError:
        if "lime" in methods:
            print("(lime is not installed: pip install -r requirements-bench.txt; LIME skipped)")
            methods.remove("lime")
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; choose from {list(METHODS)}")
    if not shared_sample.FOLDER.is_dir():
        print(f"(AG News sample not found at {shared_sample.FOLDER}: skipped)")
        return
    warnings.filterwarnings("ignore")
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # every method on one thread, like the model
    except ImportError:
        pass
    print(f"load average before: {os.getloadavg()[0]:.2f}, cpus: {os.cpu_count()}")
    model = training.train(shared_sample.rows("train.csv"))
    labels = sorted(training.model_labels(model))
    classifier = Classifier(model, labels)

    def score(texts: list[str]) -> np.ndarray:
        return classifier.predict(texts).astype(np.float64)

    short, long_ = pick_records([t for _, t in shared_sample.rows("explain.csv")], args.short, args.long, args.start)
    seeds = list(range(args.seeds))
    for title, texts, exact in (("short texts (exact Shapley values)", short, True), ("long texts", long_, False)):
        games, references, worst_se = [], [], 0.0
        start = time.perf_counter()
        for text in texts:
            game = make_game(text, score)
            full = game(np.ones((1, game.m), dtype=bool))[0]
            cls = int(full.argmax())
            if exact:
                ref = exact_shapley(game)[:, cls]
            else:
                ref_all, se = permutation_reference(game, args.reference_permutations)
                ref, worst_se = ref_all[:, cls], max(worst_se, se)
            games.append(game)
            references.append((ref, cls, float(full[cls])))
        units = [g.m for g in games]
        note = f"; reference: {args.reference_permutations} permutations, largest std. error {worst_se:.4f}"
        print(
            f"\n{len(games)} {title}: units median {np.median(units):.0f} (range {min(units)}-{max(units)})"
            f"{'' if exact else note}; references in {time.perf_counter() - start:.1f} s"
        )
        table = evaluate(methods, games, references, budgets, seeds)
        print_table(title, table, methods, budgets)
