"""The documentation's code runs: every ```python block of docs/*.md, the pytest files a
page shows (run with pytest, where the needle plugin parametrises them), and the
``>>>`` examples in the docstrings of layers and optimizers (doctest)."""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from needle.device import REGISTRY

device_module = importlib.import_module("needle.device")  # ndl.device is the function
ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
PAGES = sorted(p for p in DOCS.rglob("*.md") if BLOCK.search(p.read_text()))
FILE_HEADER = re.compile(r"^# file: (\S+)\n")

pytest_plugins = ["pytester"]


def _blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


def test_the_pages_have_code_to_run():
    assert PAGES, f"no page under {DOCS} has a python block"
    assert sum(len(_blocks(p)) for p in PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_examples_run(page, pytester, monkeypatch):
    """Blocks run in order in one namespace, in an empty folder; ``# file: x.py`` blocks are
    written there instead, and the ``test_*.py`` ones are then run by pytest."""
    # a page may register a backend: keep it out of the other tests
    monkeypatch.setattr(REGISTRY, "_backends", dict(REGISTRY._backends))
    monkeypatch.setattr(device_module, "_DEVICES", dict(device_module._DEVICES))
    blocks = _blocks(page)
    pytester.syspathinsert()  # pytester's empty folder is the working directory
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    tests = []
    for i, code in enumerate(blocks):
        header = FILE_HEADER.match(code)
        if header:
            target = pytester.path / header.group(1)
            target.write_text(code)
            if target.name.startswith("test_"):
                tests.append(target.name)
            continue
        try:
            exec(compile(code, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as exc:
            raise AssertionError(f"{page.relative_to(ROOT)} block {i + 1} failed: "
                                 f"{type(exc).__name__}: {exc}\n{code}") from exc
    if tests:
        result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:randomly",
                                               *tests)
        outcomes = result.parseoutcomes()
        assert outcomes.get("passed", 0) > 0 and not outcomes.get("failed"), \
            "\n".join(result.outlines[-30:])


def _modules(package: str) -> list:
    pkg = importlib.import_module(package)
    names = [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]
    return [importlib.import_module(n) for n in names]


def _has_examples(module) -> bool:
    return any(t.examples for t in doctest.DocTestFinder().find(module)
               if getattr(t, "filename", "") == getattr(module, "__file__", None))


DOC_MODULES = [m for m in _modules("needle.nn") + _modules("needle.optim") if _has_examples(m)]


def test_layer_and_optimizer_modules_have_examples():
    assert len(DOC_MODULES) >= 10, [m.__name__ for m in DOC_MODULES]


@pytest.mark.parametrize("module", DOC_MODULES, ids=[m.__name__ for m in DOC_MODULES])
def test_docstring_examples(module):
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module, globs={"ndl": ndl, "np": np})
             if t.examples and getattr(t, "filename", "") == getattr(module, "__file__", None)]
    np.random.seed(0)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


def _documented() -> list[type]:
    """Every public layer of needle.nn, optimizer and schedule of needle.optim."""
    found = []
    for package, base in ((ndl.nn, ndl.nn.Module), (ndl.optim, ndl.optim.Optimizer),
                          (ndl.optim, ndl.optim.LRScheduler)):
        for name in package.__all__:
            obj = getattr(package, name)
            if inspect.isclass(obj) and issubclass(obj, base) and obj is not base:
                found.append(obj)
    return found


@pytest.mark.parametrize("cls", _documented(), ids=lambda c: c.__name__)
def test_layers_and_optimizers_follow_one_docstring_pattern(cls):
    """MLX's pattern: a summary, the math or shapes, ``Args:`` for a constructor that takes
    any, and a runnable ``>>>`` example (run by test_docstring_examples) in an ``Examples:``
    section, which the API reference renders as code (an ``Example:`` one is prose)."""
    doc = inspect.getdoc(cls) or ""
    takes_args = len(inspect.signature(cls.__init__).parameters) > 1
    missing = [what for what, ok in (
        ("a one-line summary", bool(doc.strip())),
        ("an 'Args:' section", not takes_args or "\nArgs:\n" in doc),
        ("an 'Examples:' section with a '>>>' example",
         "\nExamples:\n" in doc and ">>> " in doc.split("\nExamples:\n", 1)[1])) if not ok]
    assert not missing, f"{cls.__module__}.{cls.__name__}'s docstring lacks {', '.join(missing)}"
