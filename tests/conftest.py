"""Shared test set-up: the genuine MNIST files from ../shared/data, no progress bars."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
os.environ.setdefault("CREDITLAB_DATA", str(SHARED_DATA))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["CREDITLAB_QUIET"] = "1"


@pytest.fixture
def run_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI in a subprocess, rooted in a temporary folder."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env
