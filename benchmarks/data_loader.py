"""Seconds per batch of make_loader (with augmentation) vs plain tensor indexing of the same batch.

    python benchmarks/data_loader.py --dataset cifar10 --batch-size 64 --batches 200

Falls back to a synthetic 50,000 x 3x32x32 uint8 array when the dataset cannot be built.
Also reports how long building the dataset took (the first cifar10 build decodes and caches).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pqcompress.config import DataConfig
from pqcompress.data import ArrayDataset, build_dataset, make_loader
from pqcompress.data.augment import CropFlip
from pqcompress.data.loader import epoch_generator
from pqcompress.data.normalize import Normalization
from pqcompress.errors import DataError


def load(dataset: str, root: str | None) -> tuple[ArrayDataset, str, float]:
    """The training split (with augmentation), where it came from, and the build time."""
    start = time.perf_counter()
    try:
        bundle = build_dataset(dataset, DataConfig(root=root, val_fraction=0.0, augment=True))
    except DataError as exc:
        print(f"{dataset} not available ({exc}); using a synthetic 50000x3x32x32 uint8 array")
        x = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8)
        y = torch.randint(0, 10, (50_000,))
        norm = Normalization((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
        data = ArrayDataset(x, y, normalization=norm, augment=CropFlip(pad=4))
        return data, "synthetic", time.perf_counter() - start
    assert isinstance(bundle.train, ArrayDataset)
    return bundle.train, bundle.source, time.perf_counter() - start


def time_loader(data: ArrayDataset, batch_size: int, batches: int, epoch: int) -> float:
    """Seconds per batch drawn from make_loader (shuffled, augmented, normalized)."""
    loader = make_loader(data, batch_size, shuffle=True, seed=0, epoch=epoch, drop_last=True)
    it = iter(loader)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return (time.perf_counter() - start) / batches


def time_indexing(data: ArrayDataset, batch_size: int, batches: int, epoch: int) -> float:
    """Seconds per batch of the baseline: index the stored tensor with the very rows make_loader
    uses for this epoch, and convert to float32 (no augmentation, no normalization)."""
    rows = data.rows[torch.randperm(len(data), generator=epoch_generator(0, epoch))]
    start = time.perf_counter()
    for i in range(batches):
        idx = rows[i * batch_size : (i + 1) * batch_size]
        data.x[idx].to(torch.float32), data.y[idx]
    return (time.perf_counter() - start) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--root", default=None, help="data.root for the dataset")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds; the median is shown")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data, source, build_s = load(args.dataset, args.root)
    batches = min(args.batches, len(data) // args.batch_size)
    time_loader(data, args.batch_size, 5, epoch=99)  # warm up
    time_indexing(data, args.batch_size, 5, epoch=99)
    loader_s, index_s = [], []
    for r in range(args.repeats):  # interleaved, so both see the same machine state
        loader_s.append(time_loader(data, args.batch_size, batches, epoch=r))
        index_s.append(time_indexing(data, args.batch_size, batches, epoch=r))
    loader, index = statistics.median(loader_s), statistics.median(index_s)

    print(f"source: {source}")
    print(f"build_dataset: {build_s:.3f} s   torch threads: {torch.get_num_threads()}")
    print(
        f"batch {args.batch_size} x {tuple(data.sample_shape)}, {batches} batches, median of {args.repeats}"
    )
    print()
    rows = [
        ("plain indexing + float32 (baseline)", index),
        (f"make_loader ({'augment + ' if data.augment else ''}normalize)", loader),
    ]
    print(f"| {'method':<42} | {'s/batch':>10} | {'images/s':>9} | {'ratio':>5} |")
    print(f"|{'-' * 44}|{'-' * 12}|{'-' * 11}|{'-' * 7}|")
    for label, sec in rows:
        rate = args.batch_size / sec
        print(f"| {label:<42} | {sec:10.3e} | {rate:9.0f} | {sec / index:5.2f} |")


if __name__ == "__main__":
    main()
