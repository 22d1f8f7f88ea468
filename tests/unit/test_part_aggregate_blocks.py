"""PartAggregate adds its units in blocks with numpy: the part it writes is the one a plain loop over the units in row
order writes (written here from the part's definition), bit for bit, at every block boundary, for lists from ``add``
and for the arrays a worker hands to ``add_values``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explain_workflow.parts import PartAggregate

LABELS = ["a", "b", "c"]
VOCAB = [f"w{i}" for i in range(200)] + ["The", "the", "THE", "Zürich"]


def plain_loop(records, agg_method: str) -> dict:
    """The part's sums from their definition: record by record, unit by unit, in row order."""
    k = len(LABELS)
    f_none_sum, value_sum, units, tokens = [0.0] * k, [0.0] * k, 0, {}
    for f_none, record_units in records:
        f_none_sum = [s + v for s, v in zip(f_none_sum, f_none, strict=True)]
        for text, phi in record_units:
            values = [v * v if agg_method == "mean_sq" else abs(v) for v in phi]
            units += 1
            value_sum = [s + v for s, v in zip(value_sum, values, strict=True)]
            count, sums = tokens.get(text.lower(), (0, None))
            if sums is not None:
                values = [s + v for s, v in zip(sums, values, strict=True)]
            tokens[text.lower()] = (count + 1, values)
    return {
        "records": len(records),
        "f_none_sum": f_none_sum,
        "units": units,
        "value_sum": value_sum,
        "tokens": {t: {"count": c, "sum": s} for t, (c, s) in tokens.items()},
    }


def generated(n: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        m = int(rng.integers(0, 30))  # a record may have no unit at all
        units = [(VOCAB[int(rng.integers(len(VOCAB)))], rng.normal(size=len(LABELS)).tolist()) for _ in range(m)]
        records.append((rng.random(len(LABELS)).tolist(), units))
    return records


@pytest.mark.parametrize("n", [0, 1, PartAggregate.BLOCK_RECORDS - 1, PartAggregate.BLOCK_RECORDS, 600])
@pytest.mark.parametrize("agg_method", ["mean_abs", "mean_sq"])
def test_blocks_sum_as_a_plain_loop_bit_for_bit(n, agg_method):
    records = generated(n, seed=n)
    listed, arrays = PartAggregate(LABELS, agg_method), PartAggregate(LABELS, agg_method)
    for f_none, units in records:
        listed.add(f_none, units)
        phis = np.array([phi for _, phi in units]).reshape(-1, len(LABELS))
        values = np.square(phis) if agg_method == "mean_sq" else np.abs(phis)
        arrays.add_values(f_none, [text.lower() for text, _ in units], values)
    expected = plain_loop(records, agg_method)
    for part in (listed.document(), arrays.document()):
        assert {key: part[key] for key in expected} == expected
        # the same JSON text: the same floats, the tokens in first-occurrence order
        assert json.dumps({key: part[key] for key in expected}) == json.dumps(expected)


def test_unit_texts_and_values_must_pair():
    part = PartAggregate(LABELS, "mean_abs")
    with pytest.raises(ValueError, match="2 unit texts for 1 rows of values"):
        part.add_values([0.1, 0.2, 0.7], ["a", "b"], np.zeros((1, 3)))
