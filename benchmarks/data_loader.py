"""One epoch of batching the 10,000 MNIST test images (batch 128) with ``ndl.data.DataLoader``,
against a plain NumPy loop over the same arrays, in the same process.

    python benchmarks/data_loader.py [--repeats 20]

Cases run interleaved (each repeat runs every case once, in a rotating order), so
load on a shared machine hits them alike; the median over repeats is reported.
Prints one JSON line per case, then the ratios needle / NumPy. Slicing without
shuffling makes views and copies nothing, so "slice copies" adds the copy that any
loader handing out batches it owns must make. The "per-sample" case is the same
loader over a dataset that only takes integer indices (the course-style
fallback), to show what one vectorised gather per batch saves.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import needle as ndl
import numpy as np

BATCH = 128


class PerSample(ndl.data.Dataset):
    """The MNIST arrays behind a dataset that answers one integer index at a time."""

    def __init__(self, ds: ndl.data.MNISTDataset) -> None:
        super().__init__()
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds.images[i], self.ds.labels[i]


def needle_epoch(loader: ndl.data.DataLoader) -> int:
    n = 0
    for x, _y in loader:
        n += x.shape[0]
    return n


def numpy_epoch(images: np.ndarray, labels: np.ndarray, shuffle: bool, copy: bool = False) -> int:
    n = 0
    order = np.random.permutation(len(images)) if shuffle else None
    for start in range(0, len(images), BATCH):
        if order is None:
            x, y = images[start:start + BATCH], labels[start:start + BATCH]
            if copy:  # what a loader handing out batches it owns must do
                x, y = x.copy(), y.astype(np.int64)
        else:
            idx = order[start:start + BATCH]
            x, y = images[idx], labels[idx]
        n += min(x.shape[0], y.shape[0])
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    default = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    mnist = Path(os.environ.get("NEEDLE_DATA_DIR", default)).resolve() / "mnist"
    start = time.perf_counter()
    ds = ndl.data.MNISTDataset(mnist / "t10k-images-idx3-ubyte.gz", mnist / "t10k-labels-idx1-ubyte.gz")
    load_s = time.perf_counter() - start
    print(json.dumps({"bench": "data_loader", "case": "load MNISTDataset (10,000 images, .gz)",
                      "seconds": round(load_s, 4)}))
    cases = {
        "needle DataLoader, no shuffle": lambda: needle_epoch(ndl.data.DataLoader(ds, BATCH)),
        "numpy slices, no shuffle": lambda: numpy_epoch(ds.images, ds.labels, False),
        "numpy slice copies, no shuffle": lambda: numpy_epoch(ds.images, ds.labels, False, True),
        "needle DataLoader, shuffle": lambda: needle_epoch(ndl.data.DataLoader(ds, BATCH, shuffle=True)),
        "numpy gather, shuffle": lambda: numpy_epoch(ds.images, ds.labels, True),
        "needle DataLoader, shuffle, per-sample dataset":
            lambda: needle_epoch(ndl.data.DataLoader(PerSample(ds), BATCH, shuffle=True)),
    }
    names = list(cases)
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(args.warmup + args.repeats):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            assert cases[name]() == len(ds)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    for name in names:
        print(json.dumps({"bench": "data_loader", "case": name, "batch_size": BATCH,
                          "median_ms": round(1e3 * median[name], 3),
                          "min_ms": round(1e3 * min(times[name]), 3), "repeats": args.repeats}))
    pairs = [(names[0], names[1]), (names[0], names[2]), (names[3], names[4]), (names[5], names[4])]
    for needle_case, numpy_case in pairs:
        print(json.dumps({"bench": "data_loader", "ratio": f"{needle_case} / {numpy_case}",
                          "value": round(median[needle_case] / median[numpy_case], 2)}))


if __name__ == "__main__":
    main()
