"""A helper of the benchmarks' correctness tests (not a conftest.py: tests/ has one, and
both would be imported as the same module ``conftest``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def quick_run(name: str, *args: str, **extra_env: str) -> tuple[list[dict[str, Any]], str]:
    """``run.py name --quick --no-torch [args]`` through the launcher, as a user starts it
    (with ``extra_env`` added); returns its JSON records and its whole output."""
    env = dict(os.environ, **extra_env)
    env.pop("NEEDLE_BENCH_CHILD", None)
    done = subprocess.run([sys.executable, str(HERE / "run.py"), name, "--quick", "--no-torch",
                           *args],
                          capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return records, done.stdout
