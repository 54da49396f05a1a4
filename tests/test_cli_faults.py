"""``needle train`` under attack and faults: every case exits 0, or 2 with one line.

Two runs on one ``--out`` (one wins, the other names it), symbolic links planted at
every name the command writes (never followed), runs killed early, full and
read-only disks, damaged checkpoints (fuzzed), option values (fuzzed) and a run
that diverges. Runs go in-process through ``needle.cli.main`` unless a second
process is the point.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import needle as ndl
import numpy as np
import pytest
from conftest import StopAfter, run_cli
from hypothesis import given
from hypothesis import strategies as st
from needle import serialization
from needle.cli import main, rundir
from needle.cli import train as train_module
from needle.cli.options import CLIError
from needle.cli.train import train

FAST = ["--no-progress", "--hidden-dim", "16", "--batch-size", "64"]
NAMES = ["checkpoint.npz", "metrics.jsonl", "curves.png", ".needle-train.lock"]


def needle_cmd() -> list[str]:
    """The installed console script, or ``python -m needle.cli`` when it is not on PATH."""
    script = Path(sys.executable).with_name("needle")
    return [str(script)] if script.exists() else [sys.executable, "-m", "needle.cli"]


def assert_clean_exit(rc: int, err: str, *fragments: str) -> str:
    """Exit 0, or exit 2 whose stderr ends in its one error line; returns that line."""
    assert "Traceback" not in err and "Warning" not in err, err
    if rc == 0:
        assert not fragments
        return ""
    assert rc == 2, err
    lines = err.strip().splitlines()
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def assert_finite_checkpoint(out: Path) -> dict:
    ckpt = ndl.load(out / "checkpoint.npz")
    for name, w in ckpt["model"].items():
        assert np.isfinite(w.numpy()).all(), name
    return ckpt


# -- option values -------------------------------------------------------------------------
@pytest.mark.parametrize("argv, fragments", [
    (["--lr", "inf"], ["--lr", "'inf'"]),
    (["--lr=-1"], ["--lr", "'-1'"]),
    (["--lr", "nan"], ["--lr", "'nan'"]),
    (["--optimizer", "sgd", "--momentum", "1.0"], ["--momentum 1.0", "< 1"]),
    (["--seed", str(2**32)], ["--seed 4294967296", "4,294,967,295"]),
    (["--hidden-dim", str(10**9)], ["--hidden-dim 1000000000", "<= 1,048,576"]),
    (["--hidden-dim", "300000"], ["--hidden-dim 300000", "GiB", "free here"]),
    (["--hidden-dim", "1"], ["--hidden-dim 1", "at least 2"]),
    (["--epochs", str(10**9)], ["--epochs", "<= 100,000"]),
    (["--batch-size", str(2**21)], ["--batch-size", "<= 1,048,576"]),
    (["--clip", "inf"], ["--clip", "'inf'"]),
    (["--weight-decay", "inf"], ["--weight-decay", "'inf'"]),
])
def test_out_of_range_options_are_one_line_before_anything_is_written(argv, fragments, capsys,
                                                                      tmp_path):
    rc, _, err = run_cli(["train", *FAST, *argv, "--out", str(tmp_path / "run")], capsys)
    assert rc == 2
    assert_clean_exit(rc, err, *fragments)
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


VALUES = {  # per option: values a run must accept, and values it must refuse cleanly
    "--epochs": ["1", "2", "0", "-3", "100001", "1e3", "x"],
    "--batch-size": ["64", "500", "0", "-1", "2000000", "3.5"],
    "--optimizer": ["adam", "sgd", "rmsprop"],
    "--lr": ["0.01", "1e-300", "1e30", "inf", "nan", "-1", "0", "x"],
    "--momentum": ["0", "0.5", "0.999", "1", "1.0", "-0.1", "nan"],
    "--weight-decay": ["0", "0.01", "1e30", "inf", "-1"],
    "--schedule": ["cosine", "none", "step"],
    "--seed": ["0", "7", "4294967295", "4294967296", "-1", "99999999999999999999"],
    "--hidden-dim": ["2", "16", "1", "0", "300000", "2000000", "9" * 30],
    "--holdout": ["100", "1500", "1796", "1797", "0", "5000"],
    "--clip": ["1", "1e-30", "0", "inf"],
    "--bptt": ["20"],
    "--device": ["cpu", "nope"],
}


@given(st.dictionaries(st.sampled_from(sorted(VALUES)), st.none(), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(VALUES[k]) for k in keys})))
def test_fuzzed_option_values_exit_0_or_2_with_one_line(capsys, options):
    argv = ["train", "--no-progress", "--hidden-dim", "16", "--epochs", "1"]
    for flag, value in options.items():
        argv += [f"{flag}={value}"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        rc, _, err = run_cli([*argv, "--out", str(out)], capsys)
        assert_clean_exit(rc, err)
        if rc == 0:
            assert_finite_checkpoint(out)
        elif out.exists():  # only a run that got going (then diverged) leaves its directory
            assert "diverged" in err or "cannot" in err, err
            assert_finite_checkpoint(out)


# -- the divergence case -------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_diverging_run_stops_with_one_line_and_keeps_finite_weights(optimizer, capsys, tmp_path):
    rc, _, err = run_cli(["train", *FAST, "--epochs", "2", "--optimizer", optimizer, "--lr", "1e30",
                   "--out", str(tmp_path)], capsys)
    line = assert_clean_exit(rc, err, "diverged", "epoch 1", "batch", "lower the learning rate",
                             "--lr 1e+30", str(tmp_path / "checkpoint.npz"))
    assert rc == 2 and ("nan" in line or "inf" in line)
    ckpt = assert_finite_checkpoint(tmp_path)
    assert ckpt["epoch"] == 0 and ckpt["position"] is None  # the start, the last finite state
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_non_finite_weights_are_never_saved(capsys, tmp_path):
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()
    ckpt = ndl.load(tmp_path / "checkpoint.npz")
    name = next(iter(ckpt["model"]))
    ckpt["model"][name] = ndl.Tensor(np.full(ckpt["model"][name].shape, np.nan, "float32"))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    ndl.save(ckpt, damaged / "checkpoint.npz")
    rc, _, err = run_cli(["train", "--resume", str(damaged), "--epochs", "2", "--no-progress"], capsys)
    assert_clean_exit(rc, err, "damaged run checkpoint", name, "non-finite")
    assert (tmp_path / "checkpoint.npz").read_bytes() == before


# -- one run per directory -----------------------------------------------------------------
def test_two_processes_on_one_out_one_trains_the_other_exits_2(tmp_path):
    out = tmp_path / "run"
    argv = [*needle_cmd(), "train", *FAST, "--epochs", "2", "--out", str(out)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=180), p.communicate()[1]) for p in procs]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    loser = next(err for rc, err in results if rc == 2)
    line = assert_clean_exit(2, loser)
    # the loser names the holder's pid, or (in the instant before the holder wrote it)
    # "a process that is starting", or it came after the winner finished
    assert any(part in line for part in ("in use by another 'needle train' (pid ",
                                         "in use by another 'needle train' (a process that is "
                                         "starting)", "already holds a run")), line
    assert [json.loads(x)["epoch"] for x in (out / "metrics.jsonl").read_text().splitlines()] \
        == [1, 2]
    assert ndl.load(out / "checkpoint.npz")["epoch"] == 2


def test_a_locked_directory_is_refused_naming_the_holder(capsys, tmp_path):
    lock = rundir.claim(tmp_path)  # another run holds it (an open file description of its own)
    try:
        rc, _, err = run_cli(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)], capsys)
        assert_clean_exit(rc, err, str(tmp_path), "in use by another 'needle train'",
                          f"pid {os.getpid()}")
        rc, _, err = run_cli(["train", "--resume", str(tmp_path), "--no-progress"], capsys)
        assert_clean_exit(rc, err, "in use")
    finally:
        lock.release()
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 0


@pytest.mark.skipif(sys.platform == "win32", reason="flock is POSIX")
def test_a_holder_that_has_not_written_its_pid_yet_is_waited_for(tmp_path):
    import fcntl
    import threading

    fd = os.open(tmp_path / rundir.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # locked, its pid not written yet (a run starting now)
    writer = threading.Timer(0.03, lambda: os.write(fd, b"pid 4242\n"))
    writer.start()
    try:
        with pytest.raises(CLIError, match=r"in use by another 'needle train' \(pid 4242\)"):
            rundir.claim(tmp_path)
    finally:
        writer.join()
        os.close(fd)
    lock = rundir.claim(tmp_path)  # released: the directory is free again
    lock.release()


# -- symbolic links planted at every name the command writes -----------------------------------
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_planted_links_are_refused_never_followed(name, dangling, capsys, tmp_path):
    victim = tmp_path / "victim"
    if not dangling:
        victim.write_bytes(b"precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    rc, _, err = run_cli(["train", *FAST, "--epochs", "1", "--out", str(out)], capsys)
    line = assert_clean_exit(rc, err, str(out))
    assert rc == 2 and ("symbolic link" in line or "already holds a run" in line), line
    assert victim.read_bytes() == b"precious" if not dangling else not os.path.lexists(victim)
    assert (out / name).is_symlink()


@pytest.mark.parametrize("name", [".curves.tmp.png", "metrics.jsonl.tmp",  # the old fixed names
                                  ".curves.png.0123456789ab.tmp", ".metrics.jsonl.a1b2c3d4e5f6.tmp",
                                  ".checkpoint.npz.000000000000.tmp"])  # stale temporaries
def test_links_at_temporary_names_are_never_written_through(name, capsys, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(victim)
    rc, _, err = run_cli(["train", *FAST, "--epochs", "1", "--out", str(out)], capsys)
    assert_clean_exit(rc, err)
    assert rc == 0 and victim.read_bytes() == b"precious"
    assert_finite_checkpoint(out)


def test_a_link_planted_before_a_resume_is_refused(capsys, tmp_path):
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    (tmp_path / "run" / "metrics.jsonl").unlink()
    (tmp_path / "run" / "metrics.jsonl").symlink_to(victim)
    rc, _, err = run_cli(["train", "--resume", str(tmp_path / "run"), "--epochs", "2", "--no-progress"],
                  capsys)
    assert_clean_exit(rc, err, "metrics.jsonl", "symbolic link")
    assert victim.read_bytes() == b"precious"


# -- killed runs ---------------------------------------------------------------------------
def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(capsys, tmp_path):
    for flag in ("--out", "--resume"):
        out = tmp_path / flag.strip("-")
        out.mkdir()
        (out / ".needle-train.lock").write_text("pid 1\n")  # what a killed start leaves
        (out / "metrics.jsonl").write_text("")
        extra = FAST if flag == "--out" else ["--no-progress"]
        rc, _, err = run_cli(["train", *extra, "--epochs", "1", flag, str(out)], capsys)
        assert rc == 0, err
        said = "starting it again" if flag == "--out" else "starting it from the beginning"
        assert said in err and "stopped before" in err
        assert ndl.load(out / "checkpoint.npz")["epoch"] == 1


def test_a_run_is_resumable_from_its_first_moment(capsys, tmp_path, monkeypatch):
    """The checkpoint written at the start (epoch 0) resumes into the same run."""
    given = {"epochs": 1, "hidden_dim": 16}
    assert train(given, out=str(tmp_path / "a"), progress=False) == 0

    def killed(*args):
        raise KeyboardInterrupt  # as a kill would, before the first step

    monkeypatch.setattr(train_module, "_one_epoch", killed)
    assert main(["train", "--no-progress", "--epochs", "1", "--hidden-dim", "16",
                 "--out", str(tmp_path / "b")]) == 130
    monkeypatch.undo()
    assert ndl.load(tmp_path / "b" / "checkpoint.npz")["epoch"] == 0
    assert main(["train", "--resume", str(tmp_path / "b"), "--no-progress"]) == 0
    for key, w in ndl.load(tmp_path / "a" / "checkpoint.npz")["model"].items():
        np.testing.assert_array_equal(w.numpy(),
                                      ndl.load(tmp_path / "b" / "checkpoint.npz")["model"][key]
                                      .numpy())


def test_stale_temporaries_of_a_killed_save_are_removed(capsys, tmp_path):
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 0
    stale = [tmp_path / ".checkpoint.npz.0123456789ab.tmp", tmp_path / ".curves.png.abcdefabcdef.tmp"]
    for path in stale:
        path.write_bytes(b"half a save")
    mine = tmp_path / ".notes.txt.0123456789ab.tmp"  # not a name needle writes: left alone
    mine.write_text("keep")
    assert main(["train", "--resume", str(tmp_path), "--epochs", "2", "--no-progress"]) == 0
    assert not any(p.exists() for p in stale) and mine.read_text() == "keep"


# -- output paths that cannot be written ----------------------------------------------------
def test_full_disk_during_a_checkpoint_is_one_line_and_keeps_the_previous(capsys, tmp_path,
                                                                            monkeypatch):
    assert main(["train", *FAST, "--epochs", "1", "--out", str(tmp_path)]) == 0
    before = (tmp_path / "checkpoint.npz").read_bytes()

    def full(zf, name, array):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(serialization, "_write_array", full)
    rc, _, err = run_cli(["train", "--resume", str(tmp_path), "--epochs", "2", "--no-progress"], capsys)
    assert_clean_exit(rc, err, str(tmp_path / "checkpoint.npz"), "No space left on device")
    assert (tmp_path / "checkpoint.npz").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [".needle-train.lock", "checkpoint.npz", "curves.png",
                                            "metrics.jsonl"]


def test_read_only_impossible_and_occupied_output_paths(capsys, tmp_path, monkeypatch):
    rc, _, err = run_cli(["train", *FAST, "--out", "/dev/null/run"], capsys)
    assert_clean_exit(rc, err, "/dev/null/run")
    (tmp_path / "file").write_text("x")
    rc, _, err = run_cli(["train", *FAST, "--out", str(tmp_path / "file" / "run")], capsys)
    assert_clean_exit(rc, err, str(tmp_path / "file" / "run"))
    busy = tmp_path / "busy"
    (busy / "metrics.jsonl").mkdir(parents=True)  # a directory in the way of a file
    rc, _, err = run_cli(["train", *FAST, "--epochs", "1", "--out", str(busy)], capsys)
    assert_clean_exit(rc, err, str(busy / "metrics.jsonl"))

    def read_only(self, *args, **kwargs):  # tests run as root, where chmod cannot forbid
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    rc, _, err = run_cli(["train", *FAST, "--out", str(tmp_path / "ro")], capsys)
    assert_clean_exit(rc, err, str(tmp_path / "ro"), "Read-only file system")


# -- damaged run directories (fuzzed) -------------------------------------------------------
@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory) -> dict[str, Path]:
    """A finished 1-epoch run and one stopped in the middle of epoch 1 (of 2)."""
    root = tmp_path_factory.mktemp("damaged")
    given = {"epochs": 2, "hidden_dim": 16}
    assert train({**given, "epochs": 1}, out=str(root / "done"), progress=False) == 0
    assert train(given, out=str(root / "mid"), progress=False, stop=StopAfter(5)) == 130
    return {"done": root / "done", "mid": root / "mid"}


BAD = [None, -1, 0, 1.5, 10**12, float("nan"), float("inf"), "x", True, [], {}, [1, 2]]
FIELDS = {
    "config": ["lr", "momentum", "batch_size", "epochs", "seed", "hidden_dim", "model", "dataset",
               "optimizer", "schedule", "weight_decay", "input_dim", "holdout", "clip", "device"],
    "position": ["batch", "order", "seen", "errors", "loss_sum", "seconds", "carry"],
    "rng": ["name", "keys", "pos", "has_gauss", "cached_gaussian"],
    "optimizer": ["optimizer", "num_params", "hyper", "state"],
    "scheduler": ["base_lr", "last_epoch"],
}


@st.composite
def damage(draw):
    """(which run, what to break, how): a field set to a bad value or the files damaged."""
    which = draw(st.sampled_from(["done", "mid"]))
    kind = draw(st.sampled_from(["field", "top", "history", "file"]))
    if kind == "field":
        part = draw(st.sampled_from(sorted(FIELDS)))
        return which, kind, (part, draw(st.sampled_from(FIELDS[part])), draw(st.sampled_from(BAD)))
    if kind == "top":
        return which, kind, (draw(st.sampled_from(["epoch", "position", "history", "rng", "model",
                                                   "config", "kind", "version"])),
                             draw(st.sampled_from(BAD)))
    if kind == "history":
        return which, kind, draw(st.sampled_from(["drop", "renumber", "nan", "text", "extra"]))
    return which, kind, draw(st.sampled_from(["truncate", "flip", "empty", "directory", "missing",
                                              "metrics-directory", "lock-directory"]))


def _apply(out: Path, kind: str, how) -> None:
    ckpt_path = out / "checkpoint.npz"
    if kind == "file":
        raw = ckpt_path.read_bytes()
        if how == "truncate":
            ckpt_path.write_bytes(raw[:len(raw) // 2])
        elif how == "flip":
            ckpt_path.write_bytes(raw[:100] + bytes([raw[100] ^ 0xFF]) + raw[101:])
        elif how == "empty":
            ckpt_path.write_bytes(b"")
        elif how in ("directory", "missing"):
            ckpt_path.unlink()
            if how == "directory":
                ckpt_path.mkdir()
        elif how == "metrics-directory":
            (out / "metrics.jsonl").unlink()
            (out / "metrics.jsonl").mkdir()
        else:
            (out / ".needle-train.lock").unlink()
            (out / ".needle-train.lock").mkdir()
        return
    ckpt = ndl.load(ckpt_path)
    if kind == "field":
        part, key, value = how
        if isinstance(ckpt.get(part), dict):
            ckpt[part][key] = value
        else:
            ckpt[part] = {key: value}
    elif kind == "top":
        ckpt[how[0]] = how[1]
    else:
        history = ckpt["history"]
        if not history:  # a run stopped in epoch 1: damage by adding what it cannot have
            history.append({"epoch": 1, "test_loss": 1.0})
        if how == "drop":
            history.pop()
        elif how == "renumber":
            history[-1]["epoch"] = 7
        elif how == "nan":
            history[-1]["test_loss"] = float("nan")
        elif how == "text":
            ckpt["history"] = "epoch 1"
        else:
            history.append(dict(history[-1]))
    ndl.save(ckpt, ckpt_path)


@given(damage())
def test_fuzzed_damaged_run_directories_exit_0_or_2_with_one_line(capsys, saved_runs, case):
    which, kind, how = case
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        out.mkdir()
        for entry in saved_runs[which].iterdir():
            (out / entry.name).write_bytes(entry.read_bytes())
        _apply(out, kind, how)
        for argv in (["train", "--resume", str(out), "--epochs", "2", "--no-progress"],
                     ["eval", "--checkpoint", str(out)]):
            rc, _, err = run_cli(argv, capsys)
            assert_clean_exit(rc, err)
            if rc == 0 and argv[0] == "train":
                assert_finite_checkpoint(out)


# -- data files that parse but hold nothing to learn -----------------------------------------
@pytest.mark.parametrize("count, rows, fragment", [(0, 28, "no examples to train on"),
                                                   (2, 0, "0x0 pixels")])
def test_mnist_files_without_anything_to_learn(count, rows, fragment, capsys, tmp_path):
    for part in ("train", "t10k"):
        (tmp_path / f"{part}-images-idx3-ubyte").write_bytes(
            bytes([0, 0, 8, 3]) + np.array([count, rows, rows], ">u4").tobytes()
            + bytes(count * rows * rows))
        (tmp_path / f"{part}-labels-idx1-ubyte").write_bytes(
            bytes([0, 0, 8, 1]) + np.array([count], ">u4").tobytes() + bytes(count))
    rc, _, err = run_cli(["train", *FAST, "--dataset", "mnist", "--data-dir", str(tmp_path),
                   "--out", str(tmp_path / "run")], capsys)
    assert_clean_exit(rc, err, fragment)
    assert rc == 2 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("which, kind, how, fragment", [
    ("done", "field", ("config", "lr", -1), "saved lr=-1"),
    ("done", "field", ("config", "batch_size", 0), "saved batch_size=0"),
    ("mid", "field", ("position", "batch", 10**6), "position after batch 1000000"),
    ("mid", "field", ("position", "order", np.arange(5)), "not a permutation"),
    ("done", "history", "renumber", "history entry 1"),
    ("done", "top", ("history", "epoch 1"), "history is not a list"),
    ("done", "field", ("scheduler", "base_lr", 10**12), "schedule state"),  # found by fuzzing
    ("done", "field", ("optimizer", "hyper", {"lr": 0.003, "beta1": 0.9, "beta2": 0.999,
                                              "eps": 1e-8, "weight_decay": 1e30}),
     "weight_decay"),
])
def test_damaged_values_the_issue_and_the_fuzzer_found(which, kind, how, fragment, capsys,
                                                      saved_runs, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for entry in saved_runs[which].iterdir():
        (out / entry.name).write_bytes(entry.read_bytes())
    _apply(out, kind, how)
    before = (out / "checkpoint.npz").read_bytes()
    rc, _, err = run_cli(["train", "--resume", str(out), "--epochs", "2", "--no-progress"], capsys)
    assert_clean_exit(rc, err, "damaged run checkpoint", fragment)
    assert rc == 2 and (out / "checkpoint.npz").read_bytes() == before
