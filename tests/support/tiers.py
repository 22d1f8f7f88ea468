"""The test tiers, and which one a test belongs to (tests/conftest.py marks every test with exactly one).

unit (in-process, no server, no subprocess), integration (real servers and subprocesses on 127.0.0.1),
infra (the synthesized CDK app), image (the real container image, podman), browser (headless Chromium).
``make test-<tier>`` selects one with ``-m``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "integration", "infra", "image", "browser")
# by directory under tests/ ...
DIRECTORY_TIERS = {
    "unit": "unit",
    "container": "integration",
    "local": "integration",
    "workflow": "integration",
    "packaging": "integration",
    "infra": "infra",
    "image": "image",
}
# ... unless the module needs another tier than its directory
MODULE_TIERS = {
    "container/test_codec.py": "unit",
    "container/test_image_requirements.py": "unit",
    "infra/test_iam_eval.py": "unit",
    "local/test_kernel_shap.py": "unit",
    "packaging/test_dependencies.py": "unit",
    "packaging/test_layout.py": "unit",
    "workflow/test_dataset.py": "unit",
    "workflow/test_report_browser.py": "browser",
}
TESTS = Path(__file__).resolve().parents[1]
# session fixtures that start a server or synthesize the app: a test that uses one (directly or through another
# fixture) is not a unit test, whatever its directory says
NOT_UNIT = frozenset({"moto_server_url", "server", "built_image", "synthesized"})


def tier_of(item: pytest.Item) -> str:
    tier = _declared_tier(item)
    if tier == "unit" and (heavy := sorted(NOT_UNIT.intersection(item.fixturenames))):
        raise pytest.UsageError(f"{item.nodeid}: a unit test cannot use {heavy} (tests/support/tiers.py MODULE_TIERS)")
    return tier


def _declared_tier(item: pytest.Item) -> str:
    explicit = [m.name for m in item.iter_markers() if m.name in TIERS]
    if explicit:
        if len(set(explicit)) != 1:
            raise pytest.UsageError(f"{item.nodeid}: more than one tier marker {sorted(set(explicit))}")
        return explicit[0]
    callspec = getattr(item, "callspec", None)
    if "built_image" in item.fixturenames or (callspec is not None and callspec.params.get("server") == "image"):
        return "image"  # the container's HTTP suite run against the image
    relative = Path(item.path).resolve().relative_to(TESTS).as_posix()
    tier = MODULE_TIERS.get(relative) or DIRECTORY_TIERS.get(relative.split("/")[0])
    if tier is None:
        raise pytest.UsageError(f"{item.nodeid}: no tier for {relative} (tests/support/tiers.py DIRECTORY_TIERS)")
    return tier
