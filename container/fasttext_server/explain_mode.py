"""``SERVE_MODE=explain``: /invocations answers each record's prediction and its Kernel SHAP attributions in the
shape of SageMaker Clarify's online explainer, computed here by the project's explainer (no Clarify involved).

The answer (Content-Type application/json), field by field, and where each comes from:
- ``version`` "1.0", ``predictions`` {``content_type``, ``data``: the model's own answer as a string},
  ``label_headers``, and ``explanations.kernel_shap``: one list per record, one entry per feature, each with
  ``feature_type`` and ``attributions`` [{``attribution``: one value per label, ``description``:
  {``partial_text``, ``start_idx``}}] — the layout of the "Response" section of the SageMaker developer guide's page
  "Invoke the endpoint" (clarify-online-explainability-invoke-endpoint) for a text feature, whose endpoint
  answers a new JSON schema when it has an ExplainerConfig. The search excerpts this was checked against show that
  section and the API reference's note that configured headers are included in that payload; the field names are
  as that page prints them, recalled, not re-read in full here (docs/hosting.md says so too).
- Not Clarify's: the attributions are this project's explainer (textexplain.explainer), the same one the builtin
  batch job runs, so a record explained here equals the same text explained by ``explain_records`` with the same
  options and row id (its index in the request), the seed included.

Bounded work per request: at most ``max_records`` records, ``num_samples`` coalitions each (both settings have a
hard ceiling, refused at start-up past it), the text-length limit and the request deadline (checked between records).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from fasttext_server.codec import JSON, JSONLINES, Bounds, RequestError, ResponseEncoder, decode_request
from fasttext_server.codec import parse_media_type as _media
from fasttext_server.config import ConfigError, bounded_int
from fasttext_server.model import Classifier

MAX_NUM_SAMPLES = 2_000  # hard ceiling of EXPLAIN_NUM_SAMPLES: model calls per record
MAX_RECORDS = 64  # hard ceiling of EXPLAIN_MAX_RECORDS: records per request
CEILING = "the hard ceiling of the per-request budget"  # said when an EXPLAIN_* number is past its bound
_ANSWER_TYPES = {JSON, JSONLINES, "*/*", "application/*"}
WARM_UP_TEXT = "a short text explained once at start-up"


@dataclass(frozen=True)
class ExplainSettings:
    """The explainer's options for every request (environment ``EXPLAIN_*``) and the per-request budget."""

    num_samples: int = 100  # the clarify engine's online explainer uses min(stage num_samples, 100) too
    max_records: int = 8
    granularity: str = "token"
    language: str = "english"
    baseline: str = "<UNK>"
    seed: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ExplainSettings:
        env = os.environ if env is None else env
        settings = cls(
            num_samples=bounded_int(env, "EXPLAIN_NUM_SAMPLES", cls.num_samples, 1, MAX_NUM_SAMPLES, CEILING),
            max_records=bounded_int(env, "EXPLAIN_MAX_RECORDS", cls.max_records, 1, MAX_RECORDS, CEILING),
            granularity=env.get("EXPLAIN_GRANULARITY", cls.granularity).strip() or cls.granularity,
            language=env.get("EXPLAIN_LANGUAGE", cls.language).strip() or cls.language,
            baseline=env.get("EXPLAIN_BASELINE", cls.baseline) or cls.baseline,
            seed=bounded_int(env, "EXPLAIN_SEED", cls.seed, 0, 2**32 - 1, CEILING),
        )
        settings.shap_options()  # a bad granularity or language stops the server at start-up, not at a request
        return settings

    def shap_options(self):
        """The explainer's ``ShapOptions``, validated by the run contract's own ``ClarifyOptions``."""
        from pydantic import ValidationError

        from explain_workflow.contract import ClarifyOptions
        from textexplain.explainer.explain import ShapOptions

        try:
            clarify = ClarifyOptions(
                granularity=self.granularity,
                language=self.language,
                baseline=self.baseline,
                num_samples=self.num_samples,
                seed=self.seed,
            )
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"EXPLAIN_* settings refused: {problems}") from None
        return ShapOptions.of(clarify, self.seed)


def _units(result) -> list[dict]:
    return [
        {
            "attribution": [float(v) for v in phi],
            "description": {"partial_text": span.text, "start_idx": span.start},
        }
        for span, phi in zip(result.units, result.attributions, strict=True)
    ]


def online_answer(labels: list[str], predictions: bytes, results: list) -> bytes:
    """Clarify's online answer for records explained by ``explain_records`` (pure: no model, no I/O)."""
    return orjson.dumps(
        {
            "version": "1.0",
            "predictions": {"content_type": JSONLINES, "data": predictions.decode("utf-8")},
            "label_headers": labels,
            "explanations": {
                "kernel_shap": [[{"feature_type": "text", "attributions": _units(result)}] for result in results]
            },
        }
    )


def explain(classifier: Classifier, limits, settings: ExplainSettings | None = None):
    """The ``Invoke`` of the explain mode (see ``modes``): texts in, prediction + attributions out."""
    from textexplain.explainer.explain import explain_records
    from textexplain.explainer.scorer import InProcessScorer

    settings = settings or ExplainSettings.from_env()
    options = settings.shap_options()
    scorer = InProcessScorer(classifier)
    encoder = ResponseEncoder(classifier.labels)
    why = f"EXPLAIN_MAX_RECORDS={settings.max_records}, each explained with {settings.num_samples} samples"
    bounds = Bounds(min(settings.max_records, limits.max_records), limits.max_text_chars, why)
    # One explanation before serving: the first one pays the explainer's one-time start-up (imports, numpy's
    # linear algebra), about half a second, which would otherwise land inside a request and past its deadline.
    list(explain_records([(0, WARM_UP_TEXT)], scorer.score, options, 1, False, scorer.score_normalized))

    def invoke(body, content_type, accept_header, deadline):
        if accept_header and not any(_media(part)[0] in _ANSWER_TYPES for part in accept_header.split(",")):
            raise RequestError(
                406,
                "unsupported_accept",
                f"Accept {accept_header!r} cannot be answered; the explain mode answers {JSON}",
            )
        texts = decode_request(body, content_type, bounds)
        predictions = encoder.encode(classifier.predict(texts), JSONLINES)

        def score(batch):  # one record's perturbations per call: the deadline is checked between records
            deadline.check()
            return scorer.score(batch)

        def score_normalized(batch):
            deadline.check()
            return scorer.score_normalized(batch)

        rows = list(enumerate(texts))
        results = list(explain_records(rows, score, options, 1, False, score_normalized))
        answer = online_answer(classifier.labels, predictions, results)
        if len(answer) > limits.max_response_bytes:
            detail = (
                f"the explanation of {len(answer)} bytes exceeds {limits.max_response_bytes} bytes "
                "(MAX_RESPONSE_BYTES); send fewer or shorter records"
            )
            raise RequestError(413, "response_too_large", detail)
        return 200, answer, JSON

    return invoke
