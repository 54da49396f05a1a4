"""Fixtures of the benchmarks' correctness tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def quick_run() -> Callable[..., tuple[list[dict[str, Any]], str]]:
    """``quick_run(name, **env)``: ``run.py name --quick --no-torch`` through the launcher, as
    a user starts it (with ``env`` added); returns its JSON records and its whole output."""
    def run(name: str, **extra_env: str) -> tuple[list[dict[str, Any]], str]:
        env = dict(os.environ, **extra_env)
        env.pop("NEEDLE_BENCH_CHILD", None)
        done = subprocess.run([sys.executable, str(HERE / "run.py"), name, "--quick",
                               "--no-torch"], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stderr
        records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        return records, done.stdout

    return run
