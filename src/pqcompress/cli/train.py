"""``pqcompress train``: one run from flags and/or a YAML recipe (flags win over the recipe)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from pqcompress.cli.options import add_output
from pqcompress.config import ExperimentConfig, from_dict, set_dotted, to_dict
from pqcompress.errors import ConfigError
from pqcompress.presets import PRESETS, apply_preset
from pqcompress.yamlio import parse_yaml_text

# flag dest -> dotted config key
_FLAG_KEYS = {
    "model": "model",
    "model_args": "model_args",
    "dataset": "dataset",
    "data_root": "data.root",
    "val_fraction": "data.val_fraction",
    "subset": "data.subset",
    "init_from": "init_from",
    "epochs": "train.epochs",
    "batch_size": "train.batch_size",
    "optimizer": "train.optimizer",
    "lr": "train.lr",
    "momentum": "train.momentum",
    "nesterov": "train.nesterov",
    "label_smoothing": "train.label_smoothing",
    "warmup_fraction": "train.warmup_fraction",
    "ramp_epochs": "train.ramp_epochs",
    "mask": "compression.mask",
    "ramp_steps": "compression.ramp_steps",
    "target_density": "compression.target_density",
    "solve_min_share": "compression.solve_min_share",
    "granularity": "compression.granularity",
    "target_flops": "compression.target_flops",
    "weight_decay": "train.weight_decay",
    "lr_schedule": "train.lr_schedule",
    "patience": "train.patience",
    "best_on": "train.best_on",
    "amp": "train.amp",
    "channels_last": "train.channels_last",
    "seed": "train.seed",
    "device": "train.device",
    "threads": "train.threads",
    "max_steps_per_epoch": "train.max_steps_per_epoch",
    "alpha": "compression.alpha",
    "bits": "compression.bits",
    "form": "compression.form",
    "mode": "compression.mode",
    "schedule": "compression.schedule",
    "rounding": "compression.rounding",
    "update": "compression.update",
    "targets": "compression.targets",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model, optionally with compression-aware training",
        description=(
            "Train a registered model on a registered dataset. Any compression flag "
            "(--alpha, --bits, --form, ...) or a recipe 'compression:' section turns on P->Q; "
            "unset compression fields take the library defaults (see docs/compression.md)."
        ),
    )
    p.add_argument("--recipe", type=Path, help="YAML recipe (ExperimentConfig); flags override it")
    add_output(p, type=Path, help="run directory (default: runs/<model>-<dataset>-<time>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with the config it was started "
        "with (flags may only extend --epochs)",
    )
    p.add_argument(
        "--no-progress", action="store_true", help="plain log lines instead of a progress bar"
    )
    p.add_argument("--no-compress", action="store_true", help="ignore any compression settings")
    p.add_argument(
        "--preset",
        metavar="NAME",
        help="named compression settings applied over the recipe and under the flags: "
        f"{', '.join(PRESETS)} (docs/compression.md §6)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field by dotted key, e.g. --set train.nesterov=true (repeatable)",
    )
    g = p.add_argument_group("model and data")
    g.add_argument(
        "--model",
        help="registered model name (see `pqcompress models`), or your own model as "
        "package.module:factory (imported from the working directory or PYTHONPATH)",
    )
    g.add_argument(
        "--model-args",
        type=_json_mapping,
        default=None,
        metavar="JSON",
        help="the model's options as a JSON object, e.g. '{\"width\": 0.5}'",
    )
    g.add_argument("--dataset", help="registered dataset name (see `pqcompress datasets`)")
    g.add_argument("--data-root", help="where the dataset files are")
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--subset", type=int, help="use only N training samples")
    g.add_argument(
        "--init-from",
        help="start from the weights of this run directory (its best.pt) or checkpoint file, "
        "e.g. to fine-tune a trained float model under P->Q",
    )
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    g.add_argument("--lr", type=float)
    g.add_argument("--momentum", type=float)
    g.add_argument("--weight-decay", type=float)
    g.add_argument(
        "--nesterov",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Nesterov momentum for SGD",
    )
    g.add_argument("--lr-schedule", choices=["none", "step", "cosine", "onecycle"])
    g.add_argument(
        "--warmup-fraction", type=float, help="onecycle: share of all steps spent warming up"
    )
    g.add_argument("--label-smoothing", type=float, help="cross-entropy label smoothing in [0, 1)")
    g.add_argument("--patience", type=int, help="early stopping on validation accuracy (0 = off)")
    g.add_argument(
        "--best-on",
        choices=["val", "test"],
        help="what picks the best epoch and best.pt: val (default; the test split is only "
        "measured) or test (the studies' protocol, to reproduce them)",
    )
    g.add_argument("--seed", type=int)
    g.add_argument(
        "--amp",
        choices=["off", "bf16", "fp16", "auto"],
        help="mixed precision: the forward pass and loss under autocast (fp16 with a gradient "
        "scaler); weights, optimizer and P->Q stay float32. auto: bf16 where the CPU or GPU "
        "computes bfloat16 natively, else off",
    )
    g.add_argument(
        "--channels-last",
        action="store_true",
        default=None,
        help="keep 4-D weights (convolutions) in the channels_last memory layout, which "
        "oneDNN and cuDNN run faster, with --amp bf16 above all",
    )
    g.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    g.add_argument("--threads", type=int, help="torch CPU threads (per process)")
    g.add_argument(
        "--nproc",
        type=int,
        help="train on N processes of this machine (DistributedDataParallel: gloo on CPU, "
        "nccl on CUDA) by relaunching this command under torchrun; train.batch_size is the "
        "global batch",
    )
    g.add_argument("--max-steps-per-epoch", type=int)
    g = p.add_argument_group("compression (P->Q)")
    g.add_argument("--alpha", type=float, help="pruning aggressiveness: beta = alpha * std(W)")
    g.add_argument("--bits", type=int, help="2..16, or 32 for no quantization")
    g.add_argument("--form", choices=["exact", "literal", "uniform"])
    g.add_argument("--mode", choices=["pq", "prune", "quantize"])
    g.add_argument("--schedule", choices=["step", "epoch", "post"])
    g.add_argument("--rounding", choices=["floor", "ceil", "trunc", "nearest", "stochastic"])
    g.add_argument("--update", choices=["inplace", "latent"])
    g.add_argument("--targets", choices=["weights", "biases", "both"])
    g.add_argument(
        "--mask",
        choices=["free", "sticky"],
        help="free: a pruned latent weight can come back; sticky: pruned stays pruned",
    )
    g.add_argument(
        "--target-density",
        type=float,
        help="solve one shared alpha so that this share of the weights survives (e.g. 0.1)",
    )
    g.add_argument(
        "--solve-min-share",
        type=float,
        help="with --target-density: only layers holding at least this share of the weights "
        "take the solved alpha; the others keep --alpha (default 0: every layer)",
    )
    g.add_argument(
        "--granularity",
        choices=["element", "channel"],
        help="prune single weights (element) or whole conv filters / linear rows (channel; "
        "export --shrink then removes them)",
    )
    g.add_argument(
        "--target-flops",
        type=float,
        help="with --granularity channel: solve one shared alpha so that this share of the "
        "dense model's multiply-accumulates remains (e.g. 0.5)",
    )
    g.add_argument(
        "--ramp-steps", type=int, help="grow the threshold over N optimizer steps (cubic)"
    )
    g.add_argument(
        "--ramp-epochs",
        type=float,
        help="the same ramp in epochs (converted to optimizer steps; overrides --ramp-steps)",
    )
    _show_library_defaults(p)
    p.set_defaults(func=run)


def _json_mapping(text: str) -> dict[str, Any]:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object, e.g. '{\"width\": 0.5}'")
    return value


def _show_library_defaults(p: argparse.ArgumentParser) -> None:
    """Flags default to None (a recipe's value, else the library's): say the library's in
    --help, from the config dataclasses themselves."""
    from pqcompress.config import CompressionConfig, DataConfig, TrainConfig

    sections = {"train": TrainConfig(), "compression": CompressionConfig(), "data": DataConfig()}
    for action in p._actions:
        key = _FLAG_KEYS.get(action.dest, "")
        section, _, field = key.partition(".")
        if section not in sections or action.default is not None:
            continue
        value = getattr(sections[section], field, None)
        if value is None:
            continue
        shown = str(value).lower() if isinstance(value, bool) else value
        where = "when compressing, " if section == "compression" else ""
        text = (action.help or "").rstrip()
        action.help = f"{text} ({where}default: {shown})".strip().replace("%", "%%")


def config_from_args(
    args: argparse.Namespace, base: dict[str, Any] | None = None
) -> ExperimentConfig:
    """Merge recipe (or ``base``, a saved run's config) and flags into a validated
    ExperimentConfig (unknown keys are errors)."""
    data: dict[str, Any] = {}
    if base is not None:
        data = to_dict(ExperimentConfig.from_dict(base))
    if args.recipe is not None:
        data = to_dict(ExperimentConfig.from_yaml(args.recipe))
    if getattr(args, "preset", None):
        apply_preset(data, args.preset)
    for dest, key in _FLAG_KEYS.items():
        value = getattr(args, dest, None)
        if value is not None:
            set_dotted(data, key, value)
    for item in args.set:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got '{item}'")
        key, raw = item.split("=", 1)
        set_dotted(data, key.strip(), parse_yaml_text(raw, f"--set {key.strip()}"))
    if args.no_compress:
        data["compression"] = None
    return from_dict(ExperimentConfig, data)


def saved_config(out: Path | None) -> dict[str, Any]:
    """The config a run directory was started with, for ``--resume``: the run continues as it
    was configured, and a flag may only change what resume allows (``train.epochs``); any other
    difference is refused by the trainer, naming the key."""
    from pqcompress.checkpoint import read_run_config

    if out is None:
        raise ConfigError("--resume needs --out pointing at the run directory to continue")
    if not out.exists():
        raise ConfigError(
            f"--resume: '{out}' does not exist, so there is nothing to resume; drop --resume "
            "to start a new run there"
        )
    if not out.is_dir():
        raise ConfigError(f"--resume: '{out}' is not a directory; pass the run directory")
    saved = read_run_config(out)
    if saved is None:
        raise ConfigError(
            f"--resume: '{out}' holds no run (no config.yaml); drop --resume to start one there"
        )
    return saved


def default_out_dir(cfg: ExperimentConfig) -> Path:
    return Path("runs") / f"{cfg.model}-{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def run(args: argparse.Namespace) -> int:
    from pqcompress.cli.console import print_result
    from pqcompress.train import train
    from pqcompress.train.distributed import world_size_from_env

    world = world_size_from_env()
    if args.resume:
        out = args.out
        cfg = config_from_args(args, base=saved_config(out))
    else:
        cfg = config_from_args(args)
        if args.out is None and world > 1:
            raise ConfigError(
                "under several processes (torchrun) name the run directory with --out: each "
                "process would otherwise make up its own"
            )
        out = args.out if args.out is not None else default_out_dir(cfg)
    if args.nproc is not None and args.nproc > 1 and world == 1:
        from pqcompress.train.distributed import per_rank_batch

        per_rank_batch(cfg.train.batch_size, args.nproc)  # refused here, not in N processes
        return launch_processes(args, out)
    result = train(cfg, out, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":  # one report, from the process that wrote the run
        print_result(result)
    return 130 if result.status == "interrupted" else 0


def launch_processes(args: argparse.Namespace, out: Path) -> int:
    """``train --nproc N``: the same command line under torchrun (N processes on this machine,
    ``torch.distributed.run --standalone``), with the run directory named for all of them."""
    import sys

    argv = list(getattr(args, "argv", None) or [])
    if not argv or argv[0] != "train":
        raise ConfigError("--nproc needs the train command line to relaunch")
    rest: list[str] = []
    skip = False
    for word in argv[1:]:
        if skip:
            skip = False
            continue
        if word == "--nproc":
            skip = True
            continue
        if word.startswith("--nproc="):
            continue
        rest.append(word)
    if args.out is None:
        rest += ["--out", str(out)]
    print(f"launching {args.nproc} processes: torchrun ... -m pqcompress train {' '.join(rest)}",
          file=sys.stderr)  # fmt: skip
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser
    from torch.distributed.run import run as torchrun

    from pqcompress.errors import TrainingProcessError

    launch = get_args_parser().parse_args(
        ["--standalone", "--nproc_per_node", str(args.nproc), "-m", "pqcompress", "train", *rest]
    )
    import logging

    # the agent's own log lines about the failure: the one error below says it
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        torchrun(launch)  # torchrun's agent, in this process: its failure is ours to word
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        if failure.exitcode >= 0:  # the process said what went wrong, above this line
            raise TrainingProcessError(
                f"training process {rank} of {args.nproc} stopped with exit code "
                f"{failure.exitcode} (its error is above); finished epochs stay saved in {out}"
            ) from None
        raise TrainingProcessError(
            f"training process {rank} of {args.nproc} was killed by {failure.signal_name()}, "
            f"and the others were stopped; finished epochs stay saved in {out}: continue "
            f"with pqcompress train --resume --out {out} --nproc {args.nproc}"
        ) from None
    return 0
