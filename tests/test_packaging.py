"""The four distributions build as wheels, install into a fresh virtual environment
(offline), and merge into one ``needle`` namespace there as in the editable workspace.

Wheels are built without isolation by calling each project's PEP 517 backend (hatchling,
which must be in the test environment, see hatch.toml) in one subprocess: what
``python -m build --wheel --no-isolation`` does, minus a process per package. pip (run
from the wheel bundled with ``ensurepip``, so the venv needs none) installs them with
``--no-index --no-deps``: nothing is downloaded. NumPy comes from the running
environment through a ``.pth`` file.
"""

from __future__ import annotations

import ensurepip
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["needle-core", "needle-backend-cpu", "needle-nn", "needle-backend-cuda"]


def _run(*cmd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=180,
                          **kwargs)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


_BUILD_WHEELS = """
import os, sys
from hatchling.build import build_wheel
for project in sys.argv[2:]:
    os.chdir(project)
    build_wheel(sys.argv[1])
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    pytest.importorskip("hatchling", reason="building wheels offline needs hatchling installed "
                        "(hatch.toml: [envs.hatch-test] extra-dependencies)")
    out = tmp_path_factory.mktemp("wheels")
    projects = [ROOT / "packages" / pkg for pkg in PACKAGES]
    for project in projects:
        text = (project / "pyproject.toml").read_text()  # (tomllib is 3.11+; we support 3.10)
        assert 'build-backend = "hatchling.build"' in text, project
    _run(sys.executable, "-c", _BUILD_WHEELS, out, *projects)
    found = {}
    for whl in out.glob("*.whl"):
        found[whl.name.split("-")[0].replace("_", "-")] = whl
    assert sorted(found) == sorted(PACKAGES), f"built {sorted(p.name for p in out.iterdir())}"
    return found


@pytest.fixture(scope="module")
def venv_python(wheels, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not bundled:
        pytest.skip("this Python has no bundled pip wheel (ensurepip) to install with offline")
    _run(sys.executable, "-m", "venv", "--without-pip", root / "env")
    python = root / "env" / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    # NumPy only (not the rest of this environment): a folder of links, named in a .pth file
    numpy_only = root / "numpy-only"
    numpy_only.mkdir()
    numpy_site = Path(np.__file__).resolve().parents[1]
    for name in ("numpy", "numpy.libs"):
        if (numpy_site / name).exists():
            (numpy_only / name).symlink_to(numpy_site / name)
    (Path(site.stdout.strip()) / "numpy-from-host.pth").write_text(f"{numpy_only}\n")
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-cache-dir",
         "--disable-pip-version-check", "--no-warn-script-location", "--no-compile", "--quiet",
         *wheels.values(),
         env={**os.environ, "PYTHONPATH": str(bundled[-1])})
    return python


def test_wheels_hold_what_each_distribution_owns(wheels):
    names = {pkg: zipfile.ZipFile(whl).namelist() for pkg, whl in wheels.items()}
    assert "needle/__init__.py" in names["needle-core"]
    assert "needle/testing/__init__.py" in names["needle-core"]
    assert "needle/py.typed" in names["needle-core"]
    assert "needle_backend_cpu/py.typed" in names["needle-backend-cpu"]
    # needle-nn must not ship needle/__init__.py: it would shadow core's in a wheel install
    assert "needle/__init__.py" not in names["needle-nn"]
    assert "needle/nn/__init__.py" in names["needle-nn"]
    for pkg in ("needle-backend-cpu", "needle-backend-cuda"):
        eps = next(n for n in names[pkg] if n.endswith("entry_points.txt"))
        text = zipfile.ZipFile(wheels[pkg]).read(eps).decode()
        assert "[needle.backends]" in text


def test_wheels_install_and_merge_the_namespace(venv_python, tmp_path):
    code = textwrap.dedent("""
        import json, numpy as np
        import needle as ndl
        layer = ndl.nn.Linear(3, 2)          # needle-nn joins on first attribute access
        out = layer(ndl.Tensor(np.ones((4, 3))))
        out.sum().backward()
        print(json.dumps({
            "file": ndl.__file__,
            "nn": ndl.nn.__file__,
            "path": list(ndl.__path__),
            "out": list(out.shape),
            "backends": [[b.name, b.usable, b.distribution] for b in ndl.backends()],
            "testing": ndl.testing.gradcheck(lambda x: x.exp(), np.ones(2)),
        }))
    """)
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONNOUSERSITE": "1"}
    proc = _run(venv_python, "-c", code, cwd=tmp_path, env=env)
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    prefix = str(venv_python.parents[1])
    assert info["file"].startswith(prefix), info["file"]  # from the wheel, not the checkout
    assert info["nn"].startswith(prefix), info["nn"]
    assert all(p.startswith(prefix) for p in info["path"])
    assert info["out"] == [4, 2] and info["testing"] is True
    rows = {name: (usable, dist) for name, usable, dist in info["backends"]}
    assert rows["cpu"] == (True, "needle-backend-cpu 0.1.0")
    assert "cuda" in rows and rows["cuda"][1] == "needle-backend-cuda 0.1.0"


def test_editable_workspace_merges_the_namespace():
    import needle.nn

    assert len(needle.__path__) >= 2, needle.__path__
    assert Path(needle.__file__).is_relative_to(ROOT / "packages" / "needle-core")
    assert Path(needle.nn.__file__).is_relative_to(ROOT / "packages" / "needle-nn")
    assert needle.nn.Linear is not None
