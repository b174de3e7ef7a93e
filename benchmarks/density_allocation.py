"""How ``target_density`` is spread over the layers: ``allocation="std"`` (one alpha shared by
every layer, each thinned relative to its own spread), ``allocation="magnitude"`` (one
threshold on |w| shared by every layer: global magnitude pruning) and ``allocation="lamp"``
(one threshold on each weight's share of its layer's energy at or above it, Lee et al. 2021),
on PneumoniaMNIST with the
distillation study's student CNN (4 conv layers, width 1.4), the protocol of the peer
comparison: 8 float32 epochs (Adam, lr 1e-3), then 4 fine-tuning epochs under P->Q at 4 bits
(lr 5e-4, the density ramped over 2 epochs), the test accuracy at the best validation epoch,
seeds 0-2, each variant fine-tuned from the same float32 run of its seed.

    PQCOMPRESS_DATA_DIR=../shared/datasets python benchmarks/density_allocation.py \\
        --table benchmarks/results/density_allocation.md
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import statistics
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--densities", type=float, nargs="+", default=[0.1, 0.05])
    ap.add_argument("--allocations", nargs="+", default=["std", "magnitude", "lamp"])
    ap.add_argument("--table", type=Path, default=None)
    args = ap.parse_args(argv)

    from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig
    from pqcompress.train import train

    logging.disable(logging.WARNING)
    acc: dict[str, list[float]] = {}
    val: dict[str, list[float]] = {}  # the default is chosen on this, not on test
    layer_density: dict[str, list[list[float]]] = {}
    names: list[str] = []
    with tempfile.TemporaryDirectory(prefix="pqc-alloc-") as tmp:
        for seed in args.seeds:
            base = ExperimentConfig(
                model="student_cnn",
                dataset="pneumonia",
                model_args={"width": 1.4},
                train=TrainConfig(
                    epochs=8, batch_size=64, optimizer="adam", lr=1e-3, seed=seed, threads=1
                ),
            )
            start = Path(tmp) / f"float-{seed}"
            result = train(base, start, progress=False)
            acc.setdefault("float32", []).append(float(result.best_test_acc or 0.0))
            val.setdefault("float32", []).append(float(result.val_acc_at_best or 0.0))
            for density in args.densities:
                for allocation in args.allocations:
                    cfg = dataclasses.replace(
                        base,
                        init_from=str(start),
                        train=dataclasses.replace(base.train, epochs=4, lr=5e-4, ramp_epochs=2),
                        compression=CompressionConfig(
                            bits=4,
                            target_density=density,
                            allocation=allocation,  # type: ignore[arg-type]
                        ),
                    )
                    r = train(cfg, None, progress=False)
                    key = f"{allocation}, density {density:g}"
                    acc.setdefault(key, []).append(float(r.best_test_acc or 0.0))
                    val.setdefault(key, []).append(float(r.val_acc_at_best or 0.0))
                    names = [s["name"] for s in r.compressor_stats]
                    layer_density.setdefault(key, []).append(
                        [float(s["density"]) for s in r.compressor_stats]
                    )
                    print(seed, key, r.best_test_acc, flush=True)
    lines = [
        "# target_density across layers: " + ", ".join(f"`{a}`" for a in args.allocations),
        "",
        "PneumoniaMNIST, student_cnn width 1.4, 8 float32 epochs then 4 P->Q 4-bit epochs, "
        f"seeds {', '.join(map(str, args.seeds))}; validation accuracy at the best validation "
        "epoch (what a setting is chosen on), test accuracy at that epoch (mean +- sd), and "
        "each layer's density at the end (mean over seeds).",
        "",
        f"| setting | val acc % | test acc % | per-layer density ({', '.join(names)}) |",
        "| --- | ---: | ---: | --- |",
    ]
    for key, values in acc.items():
        sd = statistics.stdev(values) if len(values) > 1 else 0.0
        per_layer = layer_density.get(key)
        shown = "-"
        if per_layer:
            means = [statistics.mean(col) for col in zip(*per_layer, strict=True)]
            shown = ", ".join(f"{100 * m:.1f}%" for m in means)
        v = val[key]
        vsd = statistics.stdev(v) if len(v) > 1 else 0.0
        lines.append(
            f"| {key} | {100 * statistics.mean(v):.2f} +- {100 * vsd:.2f} "
            f"| {100 * statistics.mean(values):.2f} +- {100 * sd:.2f} | {shown} |"
        )
    text = "\n".join(lines) + "\n"
    if args.table:
        args.table.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
