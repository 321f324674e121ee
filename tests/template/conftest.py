"""Fixtures of the template tests: the machine's Google Cloud CLI in a private, empty configuration."""

from __future__ import annotations

import os
import shutil

import pytest


@pytest.fixture(scope="module")
def gcloud() -> str:
    path = shutil.which("gcloud")
    if path is None:
        pytest.fail("gcloud (Google Cloud CLI) is not on PATH; these machines and CI have it installed")
    return path


@pytest.fixture(scope="module")
def gcloud_env(tmp_path_factory) -> dict:
    """An empty, private gcloud configuration: no account, no project, no prompts, no GCE probe."""
    return {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path_factory.mktemp("gcloud-config")),
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "CLOUDSDK_CORE_CHECK_GCE_METADATA": "false",
            "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "true",
            "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "true"}
