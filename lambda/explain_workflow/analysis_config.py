"""The Clarify analysis configuration of a run (schema ANALYSIS_CONFIG_SCHEMA_V1_0 of the SageMaker SDK)."""

from __future__ import annotations

from explain_workflow.contract import ClarifyOptions, WorkflowSettings
from explain_workflow.dataset import FROZEN_HEADERS
from explain_workflow.languages import clarify_language


def build(settings: WorkflowSettings, clarify: ClarifyOptions, endpoint_name_prefix: str = "") -> dict:
    """The analysis config for the frozen dataset: explain column ``text``, join results on ``row_id``."""
    predictor: dict = {
        "content_type": "text/csv",
        "accept_type": "application/jsonlines",
        "label": "label",
        "probability": "prob",
        "label_headers": list(settings.labels),
    }
    if settings.endpoint_name:
        predictor["endpoint_name"] = settings.endpoint_name
    else:
        predictor |= {
            "model_name": settings.model_name,
            "instance_type": settings.endpoint_instance_type,
            "initial_instance_count": settings.endpoint_instance_count,
        }
        if endpoint_name_prefix:
            predictor["endpoint_name_prefix"] = endpoint_name_prefix[:23].rstrip("-")
    shap: dict = {
        "baseline": [[clarify.baseline]],
        "num_samples": clarify.num_samples,
        "agg_method": clarify.agg_method,
        "use_logit": False,
        "save_local_shap_values": True,
        "text_config": {"granularity": clarify.granularity, "language": clarify_language(clarify.language)},
    }
    if clarify.seed is not None:
        shap["seed"] = clarify.seed  # the same samples on every attempt
    return {
        "version": "1.0",
        "dataset_type": "text/csv",
        "headers": list(FROZEN_HEADERS),
        "joinsource_name_or_index": FROZEN_HEADERS[0],
        "predictor": predictor,
        "methods": {
            "shap": shap,
            "report": {"name": "report", "title": "Text explanations"},
        },
    }
