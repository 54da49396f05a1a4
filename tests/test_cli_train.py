"""``needle train`` end to end: files written, metrics, exact resume, Ctrl-C, the default target.

Most runs call ``needle.cli.main`` in-process (the same code as the console script,
without paying Python and NumPy start-up per run on a 2-core machine); the console
script itself runs in a subprocess for a full run and for Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import needle as ndl
import pytest
from conftest import StopAfter, assert_same_run, metrics
from needle.cli import main
from needle.cli.train import train

TINY = ["--no-progress", "--hidden-dim", "32", "--batch-size", "32"]
KEYS = {"epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "seconds",
        "train_seconds", "examples", "examples_per_s"}


def cli_env() -> dict[str, str]:
    src = Path(__file__).resolve().parents[1] / "packages"
    # The child inherits this process's BLAS thread settings: OpenBLAS rounds some matrix
    # products differently with another thread count, and the resume test compares the
    # child's numbers with runs made in this process bit for bit.
    env = dict(os.environ)
    env.pop("NEEDLE_DEFAULT_DEVICE", None)
    assert (src / "needle-nn" / "src" / "needle" / "cli").is_dir()
    return env


def needle_cmd() -> list[str]:
    """The installed console script, or ``python -m needle.cli`` when it is not on PATH."""
    script = Path(sys.executable).with_name("needle")
    return [str(script)] if script.exists() else [sys.executable, "-m", "needle.cli"]


def test_console_script_writes_checkpoint_metrics_plot_and_summary(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([*needle_cmd(), "train", "--epochs", "2", *TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=120, env=cli_env())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "epoch 1/2" in proc.stderr and "epoch 2/2" in proc.stderr
    for label in ("test accuracy", "throughput", "checkpoint", "metrics", "plot"):
        assert label in proc.stdout
    rows = metrics(out)
    assert [m["epoch"] for m in rows] == [1, 2]
    for m in rows:
        assert KEYS <= set(m)
        assert 0.0 <= m["train_acc"] <= 1.0 and 0.0 <= m["test_acc"] <= 1.0
        assert m["train_loss"] > 0 and m["examples"] == 1437 and m["examples_per_s"] > 0
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ckpt = ndl.load(out / "checkpoint.npz")
    assert ckpt["epoch"] == 2 and ckpt["position"] is None and ckpt["config"]["seed"] == 0
    assert ckpt["config"]["input_dim"] == 64 and ckpt["rng"]["keys"].shape == (624,)
    assert f"{rows[-1]['test_acc']:.2%}" in proc.stdout


def test_default_run_reaches_95_percent_on_digits(tmp_path, capsys):
    """The bare ``needle train`` (only --out added): its defaults must reach the target."""
    assert main(["train", "--no-progress", "--out", str(tmp_path)]) == 0
    rows = metrics(tmp_path)
    assert len(rows) == 10
    assert rows[-1]["test_acc"] >= 0.95, rows[-1]


def test_two_epochs_plus_resume_equals_four_straight(tmp_path, capsys):
    args = [*TINY, "--schedule", "none", "--seed", "3"]
    assert main(["train", "--epochs", "4", *args, "--out", str(tmp_path / "a")]) == 0
    assert main(["train", "--epochs", "2", *args, "--out", str(tmp_path / "b")]) == 0
    assert len(metrics(tmp_path / "b")) == 2
    assert main(["train", "--resume", str(tmp_path / "b"), "--epochs", "4", "--no-progress"]) == 0
    assert_same_run(tmp_path / "a", tmp_path / "b")


@pytest.mark.parametrize("steps", [17, 45])  # mid epoch 1 (45 batches/epoch), end of epoch 1
def test_stop_mid_epoch_and_resume_equals_uninterrupted(tmp_path, capsys, steps):
    given = {"epochs": 3, "hidden_dim": 32, "batch_size": 32}
    assert train(given, out=str(tmp_path / "a"), progress=False) == 0
    assert train(given, out=str(tmp_path / "b"), progress=False, stop=StopAfter(steps)) == 130
    err = capsys.readouterr().err
    assert f"continue with: needle train --resume {tmp_path / 'b'}" in err
    saved = ndl.load(tmp_path / "b" / "checkpoint.npz")
    if steps == 17:
        assert saved["epoch"] == 0 and saved["position"]["batch"] == 17
        assert sorted(saved["position"]["order"]) == list(range(1437))  # the epoch's permutation
    else:
        assert saved["epoch"] == 1 and saved["position"] is None
    assert main(["train", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_resume_drops_metrics_lines_written_after_the_checkpoint(tmp_path, capsys):
    assert main(["train", "--epochs", "1", *TINY, "--out", str(tmp_path)]) == 0
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "stale": true}\n')
    assert main(["train", "--resume", str(tmp_path), "--epochs", "2", "--no-progress"]) == 0
    rows = metrics(tmp_path)
    assert [m["epoch"] for m in rows] == [1, 2] and "stale" not in rows[1]


def test_ctrl_c_saves_and_resume_finishes_the_same_run(tmp_path):
    args = ["--epochs", "3", "--no-progress", "--hidden-dim", "32", "--batch-size", "4"]
    proc = subprocess.Popen([*needle_cmd(), "train", *args, "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=cli_env())
    deadline = time.monotonic() + 90
    metrics_file = tmp_path / "b" / "metrics.jsonl"
    while not (metrics_file.exists() and metrics_file.read_text().strip()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no epoch finished in 90 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)  # early in epoch 2 of 3
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "Ctrl-C: finishing this step and saving" in err
    assert f"continue with: needle train --resume {tmp_path / 'b'}" in err
    saved = ndl.load(tmp_path / "b" / "checkpoint.npz")
    # Usually inside epoch 2. A signal that lands between epoch 1's metrics line and the
    # start of epoch 2 stops at the boundary instead (no position): the same contract.
    # test_stop_mid_epoch_and_resume_equals_uninterrupted pins mid-epoch stops exactly.
    assert saved["epoch"] == 1
    assert saved["position"] is None or saved["position"]["batch"] > 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    assert main(["train", *args, "--out", str(tmp_path / "a")]) == 0
    assert_same_run(tmp_path / "a", tmp_path / "b")


def test_plain_lines_without_tqdm_and_a_note_without_matplotlib(tmp_path, capsys, monkeypatch):
    from needle.cli import report
    monkeypatch.setattr(report, "tqdm", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    assert main(["train", "--epochs", "2", *TINY[1:], "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "epoch 2/2  train loss" in err
    assert "matplotlib is not installed: no curves.png" in err
    assert not (tmp_path / "curves.png").exists() and len(metrics(tmp_path)) == 2
