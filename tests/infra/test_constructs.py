"""How the constructs are put together: no import cycle, shared function defaults, derived task timeouts, and each
cdk-nag suppression where it belongs and as narrow as the finding."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from explain_workflow.contract import FailureResult, PostprocessResult, PrepareResult, json_path
from infra.config import ROOT, load_stage
from infra.constructs.definition import TASK_TIMEOUT_MARGIN
from tests.support.api_model import all_states
from tests.support.cfn import STAGES, resources
from tests.support.local_sfn import definition_from_template

# cdk-nag rules whose findings name a resource or action (finding ids like ``Resource::<arn>``): a suppression of
# one of these without applies_to would accept any wildcard the role ever gets
GRANULAR_RULES = {"AwsSolutions-IAM4", "AwsSolutions-IAM5"}


def _infra_imports() -> dict[str, set[str]]:
    """infra.* module -> the infra.* modules it imports (anywhere in the file, also inside functions)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / "infra").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("infra"):
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("infra"))
        graph[module] = found
    return graph


def test_infra_modules_import_without_a_cycle():
    graph = _infra_imports()
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join([*trail, module])}"
        state[module] = "open"
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])
        state[module] = "done"

    for module in graph:
        visit(module, [])


@pytest.mark.parametrize("stage", STAGES)
def test_lambda_tasks_time_out_one_margin_after_their_function(synthesized, stage):
    config = load_stage(stage)
    template = synthesized.templates[stage]
    functions = resources(template, "AWS::Lambda::Function")
    definition = definition_from_template(template, config.region, config.account)
    lambda_tasks = {n: s for n, s in all_states(definition).items() if ":lambda:" in s.get("Resource", "")}
    assert set(lambda_tasks) == {"Prepare", "Postprocess", "RecordFailure"}
    for name, task in lambda_tasks.items():
        function = functions[task["Resource"].rsplit(":", 1)[1]]["Properties"]
        assert task["TimeoutSeconds"] == function["Timeout"] + TASK_TIMEOUT_MARGIN.to_seconds(), name
        assert task["TimeoutSeconds"] > function["Timeout"], name


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_shares_the_stage_defaults(synthesized, stage):
    """The starter gets the same layer, log retention, removal policy and concurrency as the workflow's functions,
    from the stage's FunctionDefaults (not from the workflow construct)."""
    config = load_stage(stage)
    template = synthesized.templates[stage]
    functions = resources(template, "AWS::Lambda::Function")
    ours = {k: v["Properties"] for k, v in functions.items() if v["Properties"]["Handler"].endswith(".handler.handler")}
    assert len(ours) == 4
    (layer,) = resources(template, "AWS::Lambda::LayerVersion")
    log_groups = resources(template, "AWS::Logs::LogGroup")
    kept = set()
    for properties in ours.values():
        assert properties["Layers"] == [{"Ref": layer}]
        assert properties["ReservedConcurrentExecutions"] == config.function_concurrency
        log_group = log_groups[properties["LoggingConfig"]["LogGroup"]["Ref"]]
        assert log_group["DeletionPolicy"] == ("Retain" if config.retain_data else "Delete")
        kept.add(log_group["Properties"]["RetentionInDays"])
    (days,) = kept  # one retention for all, the shortest CloudWatch offers that keeps the stage's days
    assert days >= config.log_retention_days


@pytest.mark.parametrize("stage", STAGES)
def test_wildcard_suppressions_name_their_wildcards(synthesized, stage):
    template = synthesized.templates[stage]
    for logical_id, resource in template["Resources"].items():
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", []):
            assert len(rule["reason"]) > 40, (logical_id, rule)
            if rule["id"] in GRANULAR_RULES:
                assert rule.get("applies_to"), f"{logical_id}: {rule['id']} suppressed for any finding"


def test_no_central_suppression_module():
    """Each construct accepts its own findings next to its resources; nothing reaches into the stack afterwards."""
    assert not (ROOT / "infra" / "nag.py").exists()
    stack_source = Path(ROOT / "infra" / "stack.py").read_text(encoding="utf-8")
    assert "NagSuppressions" not in stack_source


def _paths(value, found: list[str]) -> list[str]:
    """Every JSONPath string in a definition (values of ``*.$`` keys, ResultPath, InputPath, Variable, ...)."""
    if isinstance(value, dict):
        for item in value.values():
            _paths(item, found)
    elif isinstance(value, list):
        for item in value:
            _paths(item, found)
    elif isinstance(value, str) and value.startswith("$."):
        found.append(value)
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_the_definitions_paths_into_step_answers_are_the_models_fields(synthesized, stage):
    """A path into prepare's, postprocess's or record_failure's answer names fields of PrepareResult,
    PostprocessResult or FailureResult (json_path raises for any other name)."""
    config = load_stage(stage)
    definition = definition_from_template(synthesized.templates[stage], config.region, config.account)
    models = {"$.prepare": PrepareResult, "$.result": PostprocessResult, "$.failure": FailureResult}
    checked = 0
    for path in _paths(definition, []):
        root = next((r for r in models if path.startswith(f"{r}.")), None)
        if root is not None:
            assert json_path(models[root], *path.removeprefix(f"{root}.").split("."), root=root) == path
            checked += 1
    assert checked >= 15  # the jobs' names and prefixes, the Choice, both events
    # and prepare's answer no longer carries settings the definition has as literals
    assert "processing" not in PrepareResult.model_fields
    assert not [p for p in _paths(definition, []) if p.startswith("$.prepare.processing")]
