"""Fixtures for running the official Cognite Python SDK against the CDF emulator.

tests/run-all.sh starts a fresh `cdf-emulator` per SDK version and passes its coordinates in:
CDF_EMULATOR_BASE_URL, CDF_EMULATOR_TOKEN_URL, CDF_EMULATOR_PROJECT, CDF_EMULATOR_CLIENT_ID and
CDF_EMULATOR_CLIENT_SECRET. The checks can also be pointed at any running emulator by hand.
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from dataclasses import dataclass

import pytest
from cognite.client import ClientConfig, CogniteClient, global_config
from cognite.client.credentials import OAuthClientCredentials

from sdk_compat import SDK_VERSION

# cognite-sdk 7.x fetches tokens through oauthlib, which refuses plain-http token URLs unless
# told otherwise; the emulator only serves http on 127.0.0.1.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

# Fail fast: a divergence should surface as the emulator's answer, not after minutes of backoff.
global_config.max_retries = 1
global_config.disable_pypi_version_check = True


@dataclass(frozen=True)
class EmulatorSettings:
    base_url: str
    token_url: str
    project: str
    client_id: str
    client_secret: str


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.exit(f"{name} is not set; run these checks through tests/run-all.sh", returncode=4)
    return value


@pytest.fixture(scope="session")
def emulator() -> EmulatorSettings:
    return EmulatorSettings(
        base_url=_required_env("CDF_EMULATOR_BASE_URL").rstrip("/"),
        token_url=_required_env("CDF_EMULATOR_TOKEN_URL"),
        project=_required_env("CDF_EMULATOR_PROJECT"),
        client_id=_required_env("CDF_EMULATOR_CLIENT_ID"),
        client_secret=_required_env("CDF_EMULATOR_CLIENT_SECRET"),
    )


def make_client(settings: EmulatorSettings) -> CogniteClient:
    """A client configured the way a user configures one for real CDF."""
    credentials = OAuthClientCredentials(
        token_url=settings.token_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        scopes=[f"{settings.base_url}/.default"],
    )
    config = ClientConfig(
        client_name="cdf-s3-replicator-interop",
        project=settings.project,
        base_url=settings.base_url,
        credentials=credentials,
        timeout=30,
    )
    return CogniteClient(config)


@pytest.fixture(scope="session")
def client(emulator: EmulatorSettings) -> CogniteClient:
    return make_client(emulator)


@pytest.fixture(scope="session")
def run_id() -> str:
    """Short suffix that keeps every run's spaces, databases and pipelines apart."""
    return uuid.uuid4().hex[:8]


def emulator_control(settings: EmulatorSettings, path: str, body: dict) -> dict:
    """POST to the emulator's test-only control API (outside /api/v1, no auth)."""
    request = urllib.request.Request(
        f"{settings.base_url}/__emulator/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else {}


def pytest_report_header(config: pytest.Config) -> str:
    return f"cognite-sdk {SDK_VERSION} against {os.environ.get('CDF_EMULATOR_BASE_URL', '<unset>')}"
