"""Time and memory of training per model and dataset: what a user's run costs on this machine.

Each row is one child process running the Trainer as ``pqcompress train`` does (``train()``,
its data, model and defaults; ``threads`` CPU threads) for ``--steps`` optimizer steps of one
epoch, then its evaluation of the validation and test splits. Reported: milliseconds per step
(the epoch's ``train_time_s / steps``), training images per second, the evaluation's seconds,
the estimated seconds of one full epoch (all steps of the train split plus the evaluation),
and the child's lifetime peak resident memory (VmHWM: data, model, optimizer and compressor
state included). The float32 row of each model is the baseline of its P->Q rows (ratio in the
same run).

    python benchmarks/train_time_memory.py --steps 40 --json benchmarks/results/train_time_memory.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing as mp
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS: list[dict[str, Any]] = [
    {"model": "cnn5", "dataset": "digits", "batch": 64},
    {"model": "cnn5", "dataset": "cifar10", "batch": 64},
    {"model": "resnet20", "dataset": "cifar10", "batch": 128},
    {"model": "vgg16_cifar", "dataset": "cifar10", "batch": 64, "model_args": {"batch_norm": True}},
    {"model": "student_cnn", "dataset": "pneumonia", "batch": 32},
    {"model": "amc1d", "dataset": "modulation", "batch": 64},
]
SETTINGS: dict[str, str | None] = {  # None: float32; "": the defaults; else a preset
    "float32": None,
    "P->Q default (alpha 0.5, 8 bits)": "",
    "P->Q sparse10-4bit": "sparse10-4bit",
}


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def _child(row: dict[str, Any], setting: Any, steps: int, threads: int, out: str) -> None:
    import torch

    from pqcompress.config import CompressionConfig, ExperimentConfig
    from pqcompress.presets import preset_compression
    from pqcompress.train import train

    torch.set_num_threads(threads)
    cfg = ExperimentConfig.from_dict(
        {
            "model": row["model"],
            "model_args": row.get("model_args", {}),
            "dataset": row["dataset"],
            "train": {
                "epochs": 2,  # the second epoch is timed: numba's compile is in the first
                "batch_size": row["batch"],
                "max_steps_per_epoch": steps,
                "threads": threads,
                "best_on": "val",
            },
        }
    )
    if setting is not None:
        comp = preset_compression(setting) if setting else CompressionConfig()
        cfg = dataclasses.replace(cfg, compression=comp)
    t0 = time.perf_counter()
    result = train(cfg, None, progress=False)
    wall = time.perf_counter() - t0
    last = result.history[-1]
    from pqcompress.config import DataConfig
    from pqcompress.data.registry import build_dataset

    train_size = len(build_dataset(row["dataset"], DataConfig(val_fraction=0.1)).train)
    Path(out).write_text(
        json.dumps(
            {
                "steps": last["steps"],
                "train_time_s": last["train_time_s"],
                "eval_time_s": last["eval_time_s"],
                "train_size": train_size,
                "wall_s": wall,
                "peak_rss_bytes": _peak_rss(),
            }
        )
    )


def measure(row: dict[str, Any], setting: Any, steps: int, threads: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        proc = ctx.Process(target=_child, args=(row, setting, steps, threads, str(out)))
        proc.start()
        proc.join()
        if proc.exitcode != 0 or not out.is_file():
            raise SystemExit(f"{row} {setting!r}: the child failed (exit {proc.exitcode})")
        got = json.loads(out.read_text())
    step_s = got["train_time_s"] / max(got["steps"], 1)
    steps_per_epoch = -(-got["train_size"] // row["batch"])
    return {
        **got,
        "ms_per_step": 1000 * step_s,
        "images_per_s": row["batch"] / step_s,
        "epoch_estimate_s": steps_per_epoch * step_s + got["eval_time_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", nargs="*", default=None, help="model names to run")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results = []
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, "
          f"{args.steps} steps per row")  # fmt: skip
    print("| model | dataset | batch | setting | ms/step | images/s | eval s | epoch s (est.) "
          "| peak RSS MiB | step vs float32 |")  # fmt: skip
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in ROWS:
        if args.only and row["model"] not in args.only:
            continue
        base = None
        for name, setting in SETTINGS.items():
            if row["dataset"] == "digits" and name == "P->Q sparse10-4bit":
                continue
            got = measure(row, setting, args.steps, args.threads)
            base = got["ms_per_step"] if setting is None else base
            ratio = got["ms_per_step"] / base if base else float("nan")
            results.append({**row, "setting": name, **got, "step_ratio_to_float32": ratio})
            print(
                f"| {row['model']} | {row['dataset']} | {row['batch']} | {name} | "
                f"{got['ms_per_step']:.1f} | {got['images_per_s']:.0f} | "
                f"{got['eval_time_s']:.1f} | {got['epoch_estimate_s']:.0f} | "
                f"{got['peak_rss_bytes'] / 2**20:.0f} | {ratio:.2f}x |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
