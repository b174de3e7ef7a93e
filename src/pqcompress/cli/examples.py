"""One or two examples per subcommand, shown at the end of its ``--help`` (and tested to parse)."""

from __future__ import annotations

EXAMPLES: dict[str, tuple[str, ...]] = {
    "train": (
        "pqcompress train --model cnn5 --dataset digits --epochs 3 --alpha 0.5 --bits 4 -o runs/x",
        "pqcompress train --recipe recipes/cnn5_cifar10_sparse10_4bit.yaml -o runs/s10",
        "pqcompress train -o runs/x --resume --epochs 6",
    ),
    "quickstart": ("pqcompress quickstart", "pqcompress quickstart --bits 8 -o runs/quick"),
    "models": ("pqcompress models",),
    "datasets": ("pqcompress datasets",),
    "example-image": (
        "pqcompress example-image -o digit.png",
        "pqcompress example-image --dataset pneumonia --index 3 -o xray.png",
    ),
    "export": (
        "pqcompress export runs/x -o model.pqz",
        "pqcompress export runs/x -o model.onnx",
    ),
    "inspect": ("pqcompress inspect model.pqz",),
    "evaluate": (
        "pqcompress evaluate model.pqz --dataset digits",
        "pqcompress evaluate model.onnx --dataset digits --json report.json",
    ),
    "posttrain": (
        "pqcompress posttrain runs/x --prune std --amount 1.0 -o pruned.pqz",
        "pqcompress posttrain model.pqz --quantize ort-int8 --calibration-dataset digits "
        "-o model-int8.onnx",
    ),
    "sweep": (
        "pqcompress sweep recipes/grid_cnn5_cifar10_cpu.yaml --store runs/grid.db --dry-run",
        "pqcompress sweep recipes/grid_cnn5_cifar10_cpu.yaml --store runs/grid.db",
        "pqcompress sweep recipes/grid_cnn5_cifar10_cpu.yaml --store runs/grid-edge.db "
        "--runs-dir runs/grid_runs --onnx none --float16",
    ),
    "serve": (
        "pqcompress serve model.pqz --port 8080",
        "PQC_MAX_BATCH=16 pqcompress serve model.onnx --runtime onnxruntime",
    ),
    "report": (
        "pqcompress report runs/grid.db -o report/",
        "pqcompress report runs/grid.db -o report/ --no-plots",
    ),
    "distill": ("pqcompress distill recipes/distill_pneumonia_cpu.yaml -o runs/distill",),
    "search": (
        "pqcompress search recipes/search_cnn5_cifar10_cpu.yaml --store runs/search.db -o runs/s",
    ),
    "loadtest": (
        "pqcompress loadtest http://127.0.0.1:8080 --profile rate --rps 20 --duration 30 "
        "--dataset digits -o runs/load",
    ),
    "bench-serving": (
        "pqcompress bench-serving recipes/bench_serving_vgg16_cpu.yaml --store runs/serving.db",
    ),
}


def epilog(command: str) -> str | None:
    """The ``--help`` epilog of ``command``: its examples, one per line."""
    lines = EXAMPLES.get(command)
    if not lines:
        return None
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)
