"""Every command README.md and docs/*.md tell a user to run is claimed: by the test that runs it as written, or, for
the few that cannot run here, by the reason why. A command added to the docs with no claim fails this test, so a
documented command cannot go untested unnoticed; a claim that no longer matches any command fails it too."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# what a command looks like in running text (an inline code span); prose mentions such as `cdk deploy` count too
COMMAND = re.compile(r"^(make|npx|\.venv/bin/|python -m bench|scripts/image\.sh|textexplain \w|aws |cdk |curl )")
# a usage synopsis, not a command: options in brackets, alternatives, placeholders
SYNOPSIS = re.compile(r"[\[|…]|\b[A-Z_]{4,}\b|<command>")

RUNS = "runs it as written"
README_TESTS = "tests/packaging/test_readme_commands.py::"
CDK_TESTS = "tests/infra/test_commands.py::"
IMAGE_TESTS = "tests/image/test_documented_commands.py::"
DEPLOY_CHECK = "test_each_documented_deploy_names_stacks_that_the_same_context_synthesizes"
# (pattern a command matches, the test that runs it) or (pattern, None, why it is not run by the suite)
CLAIMS: list[tuple[str, str | None, str]] = [
    (r"make demo", README_TESTS + "test_make_demo_prints_what_the_readme_shows", RUNS),
    (r"make lint", README_TESTS + "test_make_lint_runs_as_written", RUNS),
    (r"make test-\w+", "tests/packaging/test_tiers.py::test_each_tier_make_target_runs_as_written", RUNS),
    (r"make test( +#.*)?", None, "the suite itself: .ci/run runs it (test_tiers checks .ci/run names it)"),
    (r"make bench", None, "every benchmark at full size (the better part of an hour); each benchmark's "
     "documented command is run by its own test (tests/*/test_bench_commands.py) with small sizes"),
    (r"make format", None, "rewrites the checkout; `make lint` (run) checks the same files are formatted"),
    (r"make lock", None, "re-resolves every pin from PyPI and rewrites constraints.txt"),
    (r"\.venv/bin/textexplain (train|explain) --(data|model) [^-].*",
     README_TESTS + "test_the_own_data_commands_run_as_written", RUNS),
    (r"\.venv/bin/textexplain (explain|status|estimate) .*--stage dev.*",
     "tests/local/test_aws_cli.py::test_the_deploy_guide_commands_run_as_written", RUNS),
    (r"textexplain train --data f\.csv .*", README_TESTS + "test_the_local_guide_train_command_runs_as_written", RUNS),
    (r"textexplain (demo|explain|train|report|explain --stage)", None, "a name in running text, not a command line"),
    (r"npx aws-cdk@2 (synth|list)\b.*", CDK_TESTS + "test_each_documented_synth_succeeds_with_no_nag_finding", RUNS),
    (r"npx aws-cdk@2 deploy .*", CDK_TESTS + DEPLOY_CHECK,
     "needs an account; the stacks it names are checked to synthesize under the same context"),
    (r"npx aws-cdk@2 bootstrap .*", None, "needs an AWS account (creates the CDK toolkit stack there)"),
    (r"npx aws-cdk@2", None, "the CLI's name in running text"),
    (r"cdk (synth|deploy|bootstrap)", None, "a name in running text, not a command line"),
    (r"aws (s3|sagemaker-runtime) .*", None, "needs an AWS account (the AWS CLI against a deployed stage)"),
    (r"python -m bench (hostile|container)\b.*", "tests/container/test_bench_commands.py", RUNS),
    (r"python -m bench (explain|compare)\b.*", "tests/local/test_bench_commands.py", RUNS),
    (r"python -m bench engines", "tests/local/test_bench_engines.py", RUNS),
    (r"python -m bench postprocess\b.*", "tests/workflow/test_bench_commands.py", RUNS),
    (r"python -m bench report\b.*",
     "tests/workflow/test_bench_commands.py::test_report_bench_prints_the_time_to_interactive", RUNS),
    (r"python -m bench\.screenshot docs",
     "tests/workflow/test_report_browser.py::test_the_documented_screenshots_are_the_current_reports", RUNS),
    (r"(scripts/image\.sh|mkdir|curl) .*", IMAGE_TESTS + "test_the_documented_image_commands_run_as_written", RUNS),
    (r"scripts/image\.sh", None, "the script's name in running text"),
]  # fmt: skip


def joined(lines: list[str]) -> list[str]:
    """A fenced block's command lines: comments dropped, backslash continuations joined."""
    commands, pending = [], ""
    for line in lines:
        line = re.sub(r"\s+#.*$", "", line).rstrip()
        if not line or line.lstrip().startswith("#"):
            continue
        pending = f"{pending} {line.strip()}".strip()
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        commands.append(pending)
        pending = ""
    return commands


def documented() -> dict[str, set[str]]:
    """command -> the docs that show it."""
    found: dict[str, set[str]] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", text, flags=re.S)
        spans = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))
        commands = [c for block in blocks for c in joined(block.splitlines())]
        commands += [s.strip() for s in spans if COMMAND.match(s.strip()) and not SYNOPSIS.search(s)]
        for command in commands:
            found.setdefault(command, set()).add(doc.relative_to(ROOT).as_posix())
    return found


def claim_of(command: str) -> tuple[str, str | None, str] | None:
    return next((claim for claim in CLAIMS if re.fullmatch(claim[0], command)), None)


def test_every_documented_command_is_claimed_by_a_test_or_a_reason():
    unclaimed = {c: sorted(docs) for c, docs in documented().items() if claim_of(c) is None}
    assert not unclaimed, f"documented commands no test runs and no reason excuses: {unclaimed}"


def test_every_claim_matches_a_documented_command():
    commands = documented()
    used = {claim[0] for claim in map(claim_of, commands) if claim}
    stale = [pattern for pattern, _, _ in CLAIMS if pattern not in used]
    assert not stale, f"claims that match no documented command any more: {stale}"


def test_every_claimed_test_exists():
    for _, where, _ in CLAIMS:
        if where is None:
            continue
        path, _, name = where.partition("::")
        module = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {node.name for node in ast.walk(module) if isinstance(node, ast.FunctionDef)}
        assert (name in names) if name else any(n.startswith("test_") for n in names), where


def test_the_extractor_sees_blocks_spans_and_continuations():
    assert joined(["a \\", "  --b c   # why", "# only a comment", "", "d"]) == ["a --b c", "d"]
    assert SYNOPSIS.search("textexplain report RUN_DIR")
    assert SYNOPSIS.search("textexplain demo [--out x]")
    assert not SYNOPSIS.search("npx aws-cdk@2 synth -c stage=dev")
