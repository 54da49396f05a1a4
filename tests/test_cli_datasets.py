"""``needle train``/``eval`` on MNIST, CIFAR-10 and Penn Treebank files: small synthetic files in
the real formats (so no download), plus the documented 8,000/2,000 MNIST split when the real
t10k files are present."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from conftest import StopAfter, assert_one_line_error, assert_same_run, data_dir, metrics, run_cli
from needle.cli import main
from needle.cli.sources import load
from needle.cli.train import train


def idx_bytes(arr: np.ndarray) -> bytes:
    head = bytes([0, 0, 0x08, arr.ndim]) + np.array(arr.shape, ">u4").tobytes()
    return head + arr.astype(">u1").tobytes()


def write_mnist(folder: Path, n_train: int | None, n_test: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"t10k": n_test} if n_train is None else {"train": n_train, "t10k": n_test}
    for prefix, n in parts.items():
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28))
        images[np.arange(n), 2 * labels + 3, :] = 255  # a learnable stripe per class
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(images)))
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_bytes(labels))  # raw works too


def write_cifar(folder: Path, n_test: int) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    batch = {b"batch_label": b"testing batch", b"labels": [int(y) for y in rng.integers(0, 10, n_test)],
             b"data": rng.integers(0, 256, (n_test, 3072)).astype(np.uint8)}
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=2))


def write_ptb(folder: Path, lines: int, test_only: bool = False) -> None:
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(12)]
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("test",) if test_only else ("train", "test"):
        text = "\n".join(" ".join(rng.choice(words, 8)) for _ in range(lines)) + "\n"
        (folder / f"ptb.{split}.txt").write_text(text)


TINY_MLP = ["--no-progress", "--hidden-dim", "32", "--batch-size", "16"]


def test_mnist_train_and_test_files(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=96, n_test=32)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--epochs",
                 "2", *TINY_MLP, "--out", str(out)]) == 0
    rows = metrics(out)
    assert [m["examples"] for m in rows] == [96, 96]
    assert "mnist: 96 train / 32 test images" in capsys.readouterr().out
    rc, out_text, _ = run_cli(["eval", "--checkpoint", str(out)], capsys)
    assert rc == 0 and f"accuracy    {rows[-1]['test_acc']:.2%}" in out_text
    # The digits model cannot read MNIST's 784 inputs, nor this MNIST model digits' 64.
    rc, _, err = run_cli(["eval", "--checkpoint", str(out), "--dataset", "digits"], capsys)
    assert_one_line_error(rc, err, "takes 784 input features (trained on mnist)",
                          "digits data here has 64")


def test_mnist_holdout_needs_only_the_t10k_files(tmp_path, capsys):
    write_mnist(tmp_path / "mnist", n_train=None, n_test=60)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"), "--holdout",
                 "20", "--epochs", "1", *TINY_MLP, "--out", str(out)]) == 0
    assert metrics(out)[0]["examples"] == 40
    assert "mnist t10k split: 40 train / 20 held-out" in capsys.readouterr().out
    rc, _, err = run_cli(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"),
                      "--holdout", "60", "--out", str(tmp_path / "r2")], capsys)
    assert_one_line_error(rc, err, "--holdout 60: must be between 1 and 59")


def test_holdout_split_is_fixed_and_disjoint(tmp_path):
    write_mnist(tmp_path / "mnist", n_train=None, n_test=50)
    from needle.cli.options import resolve
    cfg = resolve({"dataset": "mnist", "data_dir": str(tmp_path / "mnist"), "holdout": 10})
    a = load(cfg)
    b = load(resolve({**cfg.to_dict(), "seed": 7}))  # the training seed does not move it
    np.testing.assert_array_equal(a.test.arrays[0], b.test.arrays[0])
    rows = {r.tobytes() for r in a.train.arrays[0]} | {r.tobytes() for r in a.test.arrays[0]}
    assert len(a.train) == 40 and len(a.test) == 10 and len(rows) == 50


def test_resnet9_on_a_cifar_test_batch_with_holdout(tmp_path, capsys):
    write_cifar(tmp_path / "cifar10" / "cifar-10-batches-py", n_test=24)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar10"),
                 "--holdout", "8", "--batch-size", "8", "--epochs", "1", "--no-progress",
                 "--out", str(out)]) == 0
    (row,) = metrics(out)
    assert row["examples"] == 16 and 0.0 <= row["test_acc"] <= 1.0
    ckpt = ndl.load(out / "checkpoint.npz")
    assert ckpt["config"]["model"] == "resnet9"
    rc, _, err = run_cli(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar10"),
                      "--out", str(tmp_path / "r2")], capsys)
    assert_one_line_error(rc, err, "missing the CIFAR-10 batch file data_batch_1", "--holdout N")


LM = ["--no-progress", "--hidden-dim", "8", "--embedding-dim", "6", "--batch-size", "4",
      "--bptt", "5"]


@pytest.mark.parametrize("seq_model", ["lstm", "rnn", "transformer"])
def test_language_model_stops_mid_epoch_and_resumes_exactly(tmp_path, capsys, seq_model):
    write_ptb(tmp_path / "ptb", lines=40)
    given = {"dataset": "ptb", "data_dir": str(tmp_path / "ptb"), "epochs": 2, "hidden_dim": 8,
             "embedding_dim": 6, "batch_size": 4, "bptt": 5, "seq_model": seq_model}
    assert train(given, out=str(tmp_path / "a"), progress=False) == 0
    assert train(given, out=str(tmp_path / "b"), progress=False, stop=StopAfter(7)) == 130
    saved = ndl.load(tmp_path / "b" / "checkpoint.npz")
    assert saved["position"]["batch"] == 7 and saved["position"]["carry"] is not None
    assert main(["train", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    assert_same_run(tmp_path / "a", tmp_path / "b")
    row = metrics(tmp_path / "a")[-1]
    assert row["test_perplexity"] == pytest.approx(np.exp(row["test_loss"]))
    rc, out, _ = run_cli(["eval", "--checkpoint", str(tmp_path / "a")], capsys)
    assert rc == 0 and "perplexity" in out


def test_language_model_needs_the_same_word_ids(tmp_path, capsys):
    write_ptb(tmp_path / "ptb", lines=30, test_only=True)
    out = tmp_path / "run"
    assert main(["train", "--dataset", "ptb", "--data-dir", str(tmp_path / "ptb"), "--holdout",
                 "60", "--epochs", "1", *LM, "--out", str(out)]) == 0
    other = tmp_path / "other"
    other.mkdir()
    text = (tmp_path / "ptb" / "ptb.test.txt").read_text().splitlines()
    (other / "test.txt").write_text("\n".join(reversed(text)) + "\n")  # same words, other order
    rc, _, err = run_cli(["eval", "--checkpoint", str(out), "--data-dir", str(other)], capsys)
    assert_one_line_error(rc, err, "other word ids")
    rc, _, err = run_cli(["train", "--dataset", "ptb", "--data-dir", str(tmp_path / "ptb"),
                      "--holdout", "10", "--batch-size", "8", "--out", str(tmp_path / "r")], capsys)
    assert_one_line_error(rc, err, "10 test tokens are too few for --batch-size 8")
    assert not (tmp_path / "r").exists()


REAL_MNIST = data_dir() / "mnist"


@pytest.mark.skipif(not (REAL_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason=f"real MNIST t10k files not found in {REAL_MNIST} (NEEDLE_DATA_DIR)")
def test_real_mnist_holdout_split_is_8000_2000(tmp_path):
    from needle.cli.options import resolve
    data = load(resolve({"dataset": "mnist", "data_dir": str(REAL_MNIST), "holdout": 2000}))
    assert (len(data.train), len(data.test), data.features) == (8000, 2000, 784)
    assert json.dumps(data.note) and "8,000 train / 2,000 held-out" in data.note
