"""The layer is copied from the synthesizing environment: only builds that import on the functions' runtime pass."""

from __future__ import annotations

import pytest

from infra.constructs.layer import layer_distributions, pinned_requirements, runs_on_lambda, wheel_tags


@pytest.mark.parametrize(
    "tags",
    [
        ["py3-none-any"],
        ["py2-none-any", "py3-none-any"],
        ["cp311-cp311-manylinux2014_x86_64", "cp311-cp311-manylinux_2_17_x86_64"],
        ["cp311-cp311-manylinux_2_5_x86_64", "cp311-cp311-manylinux1_x86_64", "cp311-cp311-manylinux_2_28_x86_64"],
        ["cp38-abi3-manylinux_2_17_x86_64"],
    ],
)
def test_builds_that_import_on_lambda_are_admitted(tags):
    assert runs_on_lambda(tags)


@pytest.mark.parametrize(
    "tags",
    [
        ["cp311-cp311-macosx_11_0_arm64"],
        ["cp311-cp311-manylinux_2_17_aarch64"],
        ["cp311-cp311-musllinux_1_1_x86_64"],
        ["cp311-cp311-manylinux_2_28_x86_64"],  # Amazon Linux 2 has glibc 2.26
        ["cp311-cp311-linux_x86_64"],  # built here, against this machine's glibc
        ["cp312-cp312-manylinux_2_17_x86_64"],
        ["cp311-cp311-win_amd64"],
    ],
)
def test_builds_for_another_platform_are_refused(tags):
    assert not runs_on_lambda(tags)


def test_every_distribution_the_layer_holds_imports_on_lambda():
    dists = layer_distributions(pinned_requirements())
    assert {"aws-lambda-powertools", "pydantic-core"} <= set(dists)
    assert all(runs_on_lambda(wheel_tags(d)) for d in dists.values())
