"""``needle`` bad input: one line naming the problem and the choices or the file, exit status 2.

Also ``needle eval`` and ``needle backends``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from needle.cli import main

TINY = ["--no-progress", "--hidden-dim", "32", "--batch-size", "64", "--epochs", "1"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    """One finished 1-epoch digits run shared by the checkpoint tests."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("argv, fragments", [
    (["train", "--model", "transformer"],
     ["--model", "invalid choice", "'mlp-resnet', 'resnet9', 'lm'"]),
    (["train", "--dataset", "imagenet"], ["--dataset", "'digits', 'mnist', 'cifar10', 'ptb'"]),
    (["train", "--optimizer", "rmsprop"], ["--optimizer", "'adam', 'sgd'"]),
    (["train", "--epochs", "0"], ["--epochs", "a positive integer", "'0'"]),
    (["train", "--lr", "fast"], ["--lr", "a number > 0", "'fast'"]),
    (["train", "--weight-decay", "-1"], ["--weight-decay", "a number >= 0"]),
    (["train", "--bptt", "20"], ["--bptt applies to --model lm only", "mlp-resnet"]),
    (["eval"], ["--checkpoint"]),
    (["fit"], ["invalid choice", "'train'"]),
    ([], ["required"]),
])
def test_usage_errors(argv, fragments, capsys):
    rc, _, err = run_cli(argv, capsys)
    assert_one_line_error(rc, err, *fragments)


@pytest.mark.parametrize("model, dataset, fits", [
    ("lm", "digits", "lm takes token ids (ptb)"),
    ("resnet9", "mnist", "resnet9 takes 3x32x32 colour images (cifar10)"),
    ("mlp-resnet", "cifar10", "(digits or mnist); for cifar10 use --model resnet9"),
    ("mlp-resnet", "ptb", "for ptb use --model lm"),
])
def test_model_and_dataset_mismatch(model, dataset, fits, capsys, tmp_path):
    rc, _, err = run_cli(["train", "--model", model, "--dataset", dataset, "--out", str(tmp_path / "r")],
                     capsys)
    assert_one_line_error(rc, err, f"--model {model} cannot train on --dataset {dataset}", fits)
    assert not (tmp_path / "r").exists()


def test_unknown_device_names_the_installed_ones(capsys, tmp_path):
    rc, _, err = run_cli(["train", "--device", "tpu", "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, "--device tpu", "unknown device 'tpu'", "cpu")
    assert not (tmp_path / "r").exists()


def test_unusable_device_says_why(capsys, tmp_path):
    if ndl.cuda().enabled():
        pytest.skip("cuda is usable here")
    rc, _, err = run_cli(["train", "--device", "cuda", "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, "--device cuda")


@pytest.mark.parametrize("dataset, args, missing", [
    ("mnist", [], "missing the MNIST train images (train-images-idx3-ubyte[.gz]); or add --holdout N"),
    ("mnist", ["--holdout", "100"], "missing the MNIST test images (t10k-images-idx3-ubyte[.gz])"),
    ("cifar10", [], "missing the CIFAR-10 batch file test_batch"),
    ("ptb", [], "train.txt"),
    ("ptb", ["--holdout", "100"], "test.txt"),
])
def test_data_directory_without_the_files(dataset, args, missing, capsys, tmp_path):
    rc, _, err = run_cli(["train", "--dataset", dataset, "--data-dir", str(tmp_path), *args,
                      "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, str(tmp_path), missing)


def test_missing_data_directory(capsys, tmp_path):
    rc, _, err = run_cli(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nope"),
                      "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, f"--data-dir {tmp_path / 'nope'}: no such directory")


def test_default_data_dir_comes_from_needle_data_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NEEDLE_DATA_DIR", str(tmp_path))
    rc, _, err = run_cli(["train", "--dataset", "cifar10", "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, str(tmp_path / "cifar10"))


def test_out_directory_holding_a_run_is_not_overwritten(digits_run, capsys):
    rc, _, err = run_cli(["train", "--out", str(digits_run)], capsys)
    assert_one_line_error(rc, err, "already holds a run", f"--resume {digits_run}")


def test_resume_problems(digits_run, capsys, tmp_path):
    rc, _, err = run_cli(["train", "--resume", str(tmp_path)], capsys)
    assert_one_line_error(rc, err, f"{tmp_path} holds no checkpoint.npz")
    rc, _, err = run_cli(["train", "--resume", str(digits_run)], capsys)
    assert_one_line_error(rc, err, "already finished its 1 epochs", "--epochs N")
    rc, _, err = run_cli(["train", "--resume", str(digits_run), "--lr", "0.1", "--epochs", "2"], capsys)
    assert_one_line_error(rc, err, "--lr 0.1 differs from the checkpoint's 0.003")
    rc, _, err = run_cli(["train", "--resume", str(digits_run), "--model", "resnet9"], capsys)
    assert_one_line_error(rc, err, "--model resnet9 differs from the checkpoint's mlp-resnet")
    rc, _, err = run_cli(["train", "--resume", str(digits_run), "--out", str(tmp_path)], capsys)
    assert_one_line_error(rc, err, "--out cannot be combined with --resume")


def test_corrupt_and_foreign_checkpoints(digits_run, capsys, tmp_path):
    good = (digits_run / "checkpoint.npz").read_bytes()
    cases = {"truncated.npz": (good[: len(good) // 2], "corrupt or truncated"),
             "garbage.npz": (b"not a checkpoint at all", "not a needle checkpoint"),
             "flipped.npz": (good[:200] + bytes([good[200] ^ 0xFF]) + good[201:], "corrupt")}
    for name, (blob, message) in cases.items():
        (tmp_path / name).write_bytes(blob)
        rc, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / name)], capsys)
        assert_one_line_error(rc, err, str(tmp_path / name), message)
    ndl.save({"weights": np.zeros(3)}, tmp_path / "other.npz")
    rc, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / "other.npz")], capsys)
    assert_one_line_error(rc, err, "not of a 'needle train' run")
    rc, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / "absent.npz")], capsys)
    assert_one_line_error(rc, err, "absent.npz: no such file")


def test_checkpoint_from_another_model(digits_run, capsys, tmp_path):
    rc, _, err = run_cli(["eval", "--checkpoint", str(digits_run), "--model", "lm"], capsys)
    assert_one_line_error(rc, err, "holds a mlp-resnet model, not lm")
    # A run checkpoint whose weights belong to another network than its config says.
    ckpt = ndl.load(digits_run / "checkpoint.npz")
    ckpt["config"]["hidden_dim"] = 48
    ndl.save(ckpt, tmp_path / "swapped.npz")
    rc, _, err = run_cli(["eval", "--checkpoint", str(tmp_path / "swapped.npz")], capsys)
    assert_one_line_error(rc, err, "its weights do not fit a mlp-resnet", "shape")


def test_eval_on_data_the_model_cannot_read(digits_run, capsys, tmp_path):
    rc, _, err = run_cli(["eval", "--checkpoint", str(digits_run), "--dataset", "ptb"], capsys)
    assert_one_line_error(rc, err, "--model mlp-resnet cannot train on --dataset ptb")


def test_eval_reports_the_runs_final_accuracy(digits_run, capsys):
    import json
    last = json.loads((digits_run / "metrics.jsonl").read_text().splitlines()[-1])
    rc, out, _ = run_cli(["eval", "--checkpoint", str(digits_run / "checkpoint.npz")], capsys)
    assert rc == 0
    assert f"accuracy    {last['test_acc']:.2%}" in out
    assert f"loss        {last['test_loss']:.4f}" in out
    assert "evaluated 360 held-out/test examples" in out


def test_eval_on_a_different_holdout(digits_run, capsys):
    rc, out, _ = run_cli(["eval", "--checkpoint", str(digits_run), "--holdout", "500"], capsys)
    assert rc == 0 and "evaluated 500 held-out/test examples" in out


def test_backends_lists_each_with_its_state(capsys):
    rc, out, _ = run_cli(["backends"], capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0].split() == ["backend", "distribution", "status"]
    for info in ndl.backends():
        row = next(line for line in lines[1:] if line.split()[0] == info.name)
        assert ("usable" in row) if info.usable else (f"not usable: {info.reason}" in row)


def test_console_script_bad_input_exits_2_without_traceback(tmp_path):
    script = Path(sys.executable).with_name("needle")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "needle.cli"]
    proc = subprocess.run([*cmd, "train", "--model", "lm", "--dataset", "digits"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "needle train: error: --model lm cannot train on --dataset digits: lm takes token ids "
        "(ptb); for digits use --model mlp-resnet"]
