"""Trainer (epochs, evaluation, best epoch, early stopping, checkpoints, resume) and ``train``."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pqcompress import faults
from pqcompress.atomic import stale_temp_files
from pqcompress.checkpoint import (
    load_checkpoint,
    load_model_state,
    read_run_config,
    save_checkpoint,
    split_seed_of,
)
from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig, to_dict
from pqcompress.cpus import cpu_model
from pqcompress.data.batches import evaluation_view
from pqcompress.data.bundle import DataBundle
from pqcompress.distill import DistillationCriterion, DistillationLoss, TeacherEnsemble
from pqcompress.errors import (
    CheckpointError,
    ConfigError,
    DivergedError,
    StorageError,
    TrainingProcessError,
)
from pqcompress.metrics.classification import classification_report, evaluate_model
from pqcompress.metrics.sparsity import model_density
from pqcompress.train import distributed, loop
from pqcompress.train.checkpoint import capture_rng, restore_rng
from pqcompress.train.device import apply_threads, resolve_device
from pqcompress.train.history import EPOCH_KEYS, MetricsLog
from pqcompress.train.optim import EpochLRSchedule, build_optimizer
from pqcompress.train.progress import EpochProgress
from pqcompress.train.result import RunResult, Status
from pqcompress.train.rundir import RunDir, check_same_config
from pqcompress.train.tracking import BestTracker

_log = logging.getLogger("pqcompress.train")

EVAL_BATCH_SIZE = 256


def build_compressor(model: nn.Module, cfg: CompressionConfig) -> Any:
    """The aware-training Compressor for ``model`` (imported lazily)."""
    from pqcompress.aware.compressor import Compressor

    return Compressor(model, cfg)


def _plain(value: Any) -> Any:
    """JSON-safe copy of compressor stats (dataclasses, tensors, tuples)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def _json_safe(value: Any) -> Any:
    """Plain Python data (numpy scalars become floats) that ``torch.load(weights_only=True)``
    accepts, or None when ``value`` is not JSON-like."""
    try:
        return json.loads(json.dumps(value, default=float))
    except (TypeError, ValueError):
        return None


def _finite_parameters(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())


def _check_checkpoint_values(ckpt: dict[str, Any]) -> None:
    """CheckpointError (one line) for a checkpoint whose contents cannot be resumed from: a
    missing part, an epoch that is not a whole number in 0..epochs, or non-finite weights."""
    for key in ("model", "optimizer", "scheduler", "tracker", "rng", "epoch"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint lacks '{key}'; it cannot be resumed from")
    epoch = ckpt["epoch"]
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
        raise CheckpointError(f"checkpoint epoch {epoch!r} is not a whole number >= 0")
    if not isinstance(ckpt["model"], Mapping):
        raise CheckpointError("checkpoint 'model' is not a state dict")
    for name, value in ckpt["model"].items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"checkpoint tensor '{name}' is not a tensor")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(
                f"checkpoint tensor '{name}' holds NaN or inf: the run had diverged; resume "
                "from an earlier run directory or start again with a lower learning rate"
            )


def _threads_note(threads: int, requested: int | None) -> str | None:
    """A log line when the thread count was cut by a CPU quota or PQCOMPRESS_THREADS."""
    if requested is not None:
        return None
    from pqcompress.cpus import cpu_budget

    budget = cpu_budget()
    if budget.source == "affinity":
        return None
    why = (
        f"cgroup quota {budget.quota:g} CPUs ({budget.quota_source})"
        if budget.source == "quota"
        else "PQCOMPRESS_THREADS"
    )
    return f"threads: {threads} (from {why}; {budget.affinity} CPUs in the affinity mask)"


def ramp_steps_for(train_cfg: TrainConfig, bundle: DataBundle) -> int:
    """``train.ramp_epochs`` in optimizer steps: epochs x steps per epoch (rounded)."""
    loader = loop.make_epoch_loader(
        bundle.train, train_cfg.batch_size, shuffle=True, seed=train_cfg.seed, epoch=0
    )
    steps = loop.steps_in_epoch(loader, train_cfg.max_steps_per_epoch)
    return round(float(train_cfg.ramp_epochs or 0.0) * steps)


class Trainer:
    """Trains ``model`` on ``bundle`` with optional compression after every optimizer step.

    Each epoch: set the lr, train over a loader seeded by (seed, epoch) (``compressor.step()``
    after each ``optimizer.step()``), ``compressor.epoch_end()``, evaluate val and test, append
    one line to ``metrics.jsonl``, save ``best.pt`` when test accuracy improved, then save
    ``checkpoint.pt``. With ``schedule="post"`` the compressor is applied once after the last
    epoch and the compressed model's metrics become ``RunResult.post``.

    ``out_dir=None`` runs in memory and writes nothing. ``resume=True`` continues the run in
    ``out_dir`` (or starts it when there is none yet). ``config_dict`` is what config.yaml and
    the checkpoint record and what resume compares; default ``{"train": ..., "compression": ...}``.
    ``criterion`` (``loop.Criterion``: ``(logits, x, y, extra) -> loss``) replaces
    cross-entropy in training (evaluation still reports cross-entropy), e.g. a distillation
    loss; when ``bundle.train`` yields ``(x, y, extra)`` batches the criterion gets ``extra``.
    """

    def __init__(
        self,
        model: nn.Module,
        bundle: DataBundle,
        train_cfg: TrainConfig,
        compression: CompressionConfig | None,
        out_dir: str | Path | None,
        *,
        progress: bool = True,
        resume: bool = False,
        config_dict: dict[str, Any] | None = None,
        criterion: loop.Criterion | None = None,
    ) -> None:
        self.cfg = train_cfg
        self.criterion = criterion
        self.bundle = bundle
        self.compression = compression
        self.resume = resume
        self.device = resolve_device(train_cfg.device)
        # several processes (torchrun): rank 0 writes, every rank trains its shard
        self.dist = distributed.from_env(self.device)
        if self.dist is not None and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        self.batch_size = distributed.per_rank_batch(train_cfg.batch_size, self.dist)
        # train.amp: autocast forward and loss; weights, optimizer and P->Q stay float32
        self.amp_mode = loop.resolve_amp(train_cfg.amp, self.device)
        if train_cfg.amp == "auto":
            _log.info("train.amp=auto: %s on %s", self.amp_mode, self.device)
        elif self.amp_mode == "bf16" and not loop.native_bf16(self.device):
            _log.warning(
                "train.amp=bf16: %s has no native bfloat16 (AVX512-BF16 or AMX on a CPU), so "
                "autocast emulates it, many times slower than float32 (a 2-core AVX2 EPYC: "
                "15x, docs/training.md); set train.amp: auto or off",
                self.device,
            )
        self.amp = (
            loop.MixedPrecision(self.amp_mode, self.device) if self.amp_mode != "off" else None
        )
        self.progress = progress and (self.dist is None or self.dist.main)
        self._read_dir = RunDir(Path(out_dir)) if out_dir is not None else None
        self.run_dir = self._read_dir if self.dist is None or self.dist.main else None
        if self.run_dir is not None:
            self.run_dir.check_can_start(resume)
        if config_dict is None:
            config_dict = {"train": to_dict(train_cfg), "compression": to_dict(compression)}
        self.config: dict[str, Any] = copy.deepcopy(dict(config_dict))
        self.threads = apply_threads(_threads_per_process(train_cfg.threads, self.dist))
        self.model = model.to(self.device)
        if train_cfg.channels_last:  # 4-D weights and buffers only; the kernels take any layout
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist is not None:  # every rank starts from rank 0's weights (and its copies)
            import torch.distributed as tdist

            with torch.no_grad():
                for t in self.model.state_dict().values():
                    tdist.broadcast(t, src=0)
        if compression is not None and train_cfg.ramp_epochs is not None:
            compression = dataclasses.replace(
                compression, ramp_steps=ramp_steps_for(train_cfg, bundle)
            )
            self.compression = compression
        self.compressor = build_compressor(self.model, compression) if compression else None
        if self.compressor is not None:  # the run's thread count (train.threads) for its kernels
            self.compressor.threads = self.threads
        self.optimizer = build_optimizer(self.model.parameters(), train_cfg, self.compressor)
        # the module the steps run through: DDP averages gradients (and broadcasts rank 0's
        # weights and BatchNorm buffers); the plain model is what is evaluated and saved
        self.train_module: nn.Module = self.model
        if self.dist is not None:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_module = DistributedDataParallel(self.model, device_ids=ids)
        self.schedule = EpochLRSchedule(self.optimizer, train_cfg)
        self.has_val = bundle.val is not None and len(bundle.val) > 0  # type: ignore[arg-type]
        monitor = "val_acc" if self.has_val else "test_acc"
        self.tracker = BestTracker(
            patience=train_cfg.patience, monitor=monitor, best_on=train_cfg.best_on
        )
        self.history = MetricsLog(self.run_dir.metrics if self.run_dir else None)
        self.epochs_done = 0
        self._saved_history: list[dict[str, Any]] = []  # the metrics rows the checkpoint holds
        self._committed: dict[str, Any] = self.tracker.state_dict()
        self._elapsed_before = 0.0
        self._session_start = time.perf_counter()

    # ------------------------------------------------------------------ public

    def fit(self) -> RunResult:
        """Train until ``train_cfg.epochs``, early stop or Ctrl-C; return (and store) the result."""
        try:
            if self.run_dir is None:
                return self._fit()
            with self.run_dir.locked():
                try:
                    return self._fit()
                except StorageError as exc:
                    raise StorageError(
                        f"{exc}; the {self.epochs_done} finished epoch(s) stay saved in "
                        f"{self.run_dir.root}: free space, then run again with --resume"
                    ) from None
        except Exception as exc:
            if self.dist is None or not distributed.lost_peer(exc):
                raise
            raise TrainingProcessError(
                f"process {self.dist.rank} of {self.dist.world} lost the others "
                f"({distributed.describe(exc)}): a training process died; the "
                f"{self.epochs_done} finished epoch(s) stay saved: continue with --resume"
            ) from None

    def _fit(self) -> RunResult:
        self._session_start = time.perf_counter()
        finished = self._start_all()
        if finished is not None:
            return finished
        status: Status = "completed"
        epochs = self.cfg.epochs
        quiet = self.dist is not None and not self.dist.main  # rank 0 speaks for the group
        with EpochProgress(
            self.progress, epochs, stream=io.StringIO() if quiet else None
        ) as progress:
            note = _threads_note(self.threads, self.cfg.threads)
            if note:
                progress.message(note)
            if self.cfg.patience and not self.has_val:
                progress.message("note: no validation split; early stopping watches test accuracy")
            try:
                for epoch in range(self.epochs_done, epochs):
                    if self.tracker.should_stop:
                        break
                    self._run_epoch(epoch, progress)
                if self.epochs_done < epochs:
                    status = "early_stopped"
            except KeyboardInterrupt:
                status = "interrupted"
                self._rollback_to_committed()
                progress.message(self._interrupt_message())
        post = None
        if status != "interrupted" and self._post_training():
            post = self._apply_post()
        result = self._result(status, post)
        if self.run_dir is not None:
            self.run_dir.write_result(result.to_dict())
        return result

    def evaluate(self, split: str = "test", *, report: bool = False) -> dict[str, Any]:
        """Loss and accuracy (fractions) of the current model on "train", "val" or "test".

        Runs in eval mode without gradients, in dataset order, without augmentation (datasets
        offering ``with_augment(None)``, such as ``ArrayDataset``, are evaluated un-augmented).

        Returns ``{"loss", "accuracy", "n"}`` plus ``"report"`` (confusion matrix, per-class
        and macro precision/recall/F1) when ``report`` is true.
        """
        datasets = {"train": self.bundle.train, "val": self.bundle.val, "test": self.bundle.test}
        if split not in datasets:
            raise ConfigError(f"split={split!r} is not accepted; expected 'train', 'val' or 'test'")
        dataset = datasets[split]
        if dataset is None:
            raise ConfigError(f"dataset '{self.bundle.name}' has no {split} split")
        dataset = evaluation_view(dataset)  # clean (un-augmented) samples, plain (x, y)
        loader = loop.make_epoch_loader(
            dataset,
            max(self.cfg.batch_size, EVAL_BATCH_SIZE),
            shuffle=False,
            seed=self.cfg.seed,
            epoch=self.schedule.epoch,
            shard=(self.dist.rank, self.dist.world) if self.dist is not None else None,
            even=False,
        )
        out = evaluate_model(self.model, loader, self.device, return_predictions=report)
        if self.dist is not None:  # every rank evaluated a shard: the sums over ranks
            loss, correct, n = self.dist.sum(
                [out["loss"] * out["n"] if out["n"] else 0.0, out["accuracy"] * out["n"], out["n"]],
                self.device,
            )
            out.update(
                loss=loss / n if n else float("nan"),
                accuracy=round(correct) / n if n else 0.0,
                n=int(n),
            )
            if report:
                parts = self.dist.gather((out["predictions"], out["labels"]))
                out["predictions"] = torch.cat([p for p, _ in parts])
                out["labels"] = torch.cat([y for _, y in parts])
        if report:
            out["report"] = classification_report(
                out.pop("predictions"),
                out.pop("labels"),
                self.bundle.num_classes,
                self.bundle.class_names,
            )
        return out

    def density(self) -> float:
        """Nonzero fraction of the compressed tensors (or of all conv/linear weights)."""
        if self.compressor is not None:
            return float(self.compressor.density())
        return model_density(self.model)

    # --------------------------------------------------------------- start/resume

    def _start(self) -> RunResult | None:
        """Prepare a fresh or resumed run; return the stored result of a finished run.

        Everything that can refuse the run is checked before the first write, so a refused
        resume leaves the run directory exactly as it was.
        """
        rd = self.run_dir
        if rd is None:
            torch.manual_seed(self.cfg.seed)
            return None
        rd.check_can_start(self.resume)
        if self.resume and rd.checkpoint.exists() and not rd.checkpoint.is_file():
            raise CheckpointError(
                f"cannot resume {rd.root}: '{rd.checkpoint}' is not a regular file; move it away "
                "to start the run again (its metrics.jsonl is left as it is)"
            )
        if not self.resume or not rd.checkpoint.is_file():
            return self._start_fresh(rd)
        ckpt = load_checkpoint(rd.checkpoint)
        check_same_config(ckpt.get("config", {}), self.config, rd.root)
        stored = rd.read_result()
        self._load(ckpt)
        rows, note = self.history.reconcile(self.epochs_done, ckpt.get("history"))
        status = stored.get("status") if stored else None
        current = stored is not None and stored.get("epochs_run") == self.epochs_done
        if current and (
            status == "early_stopped"
            or (status == "completed" and self.epochs_done >= self.cfg.epochs)
        ):
            print(
                f"note: the run in {rd.root} already finished ({status}); returning its result",
                file=sys.stderr,
            )
            return self._finished_result(stored)  # type: ignore[arg-type]
        # checks done: from here on the run directory is written
        self._clean_temps()
        rd.write_config(self.config)
        self.history.commit(rows)
        self._saved_history = list(rows)
        if note:
            print(note, file=sys.stderr)
        restore_rng(ckpt["rng"])
        return None

    def _start_all(self) -> RunResult | None:
        """:meth:`_start` on rank 0 (the only writer), then the other ranks follow: the
        same checkpoint loaded, or the same fresh start, or the stored result."""
        if self.dist is None:
            return self._start()
        if self.dist.main:
            try:
                finished = self._start()
            except BaseException as exc:  # the others must not wait for a start that failed
                self.dist.broadcast({"error": f"{type(exc).__name__}: {exc}"})
                raise
            self.dist.broadcast({"epochs_done": self.epochs_done, "finished": finished is not None})
            return finished
        state = self.dist.broadcast(None)
        if "error" in state:
            raise CheckpointError(f"rank 0 could not start the run: {state['error']}")
        rd = self._read_dir
        if state["finished"] and rd is not None:
            return self._finished_result(rd.read_result() or {})
        if state["epochs_done"] and rd is not None:
            ckpt = load_checkpoint(rd.checkpoint)
            self._load(ckpt)
            rows = list(ckpt.get("history") or [])[: self.epochs_done]
            self.history.rows = list(rows)
            self._saved_history = list(rows)
            restore_rng(ckpt["rng"])
        else:
            torch.manual_seed(self.cfg.seed)
        return None

    def _start_fresh(self, rd: RunDir) -> None:
        """Start at epoch 1 (a new run, or a resume that finds no checkpoint yet)."""
        saved = rd.read_config() if self.resume else None
        if saved is not None:
            check_same_config(saved, self.config, rd.root)
        orphans = self.history.file_rows() if self.resume else []
        if orphans and rd.result.is_file():
            raise CheckpointError(
                f"cannot resume {rd.root}: it holds a result and {len(orphans)} epoch line(s) "
                "but no checkpoint.pt; starting again would overwrite that run, so nothing was done"
            )
        self._clean_temps()
        if orphans:
            dropped = rd.root / "metrics.dropped.jsonl"
            os.replace(rd.metrics, dropped)
            print(
                f"note: {rd.metrics} held {len(orphans)} epoch line(s) but no checkpoint.pt was "
                f"written for them (stopped before the first checkpoint); they are kept in "
                f"{dropped.name} and the run starts from epoch 1",
                file=sys.stderr,
            )
        rd.write_config(self.config)
        self.history.commit([])
        if self.resume:
            print(
                f"note: no checkpoint in {rd.root}; starting the run from epoch 1", file=sys.stderr
            )
        torch.manual_seed(self.cfg.seed)
        return None

    def _load(self, ckpt: dict[str, Any]) -> None:
        _check_checkpoint_values(ckpt)
        try:
            self.model.load_state_dict(ckpt["model"])
            self.optimizer.load_state_dict(ckpt["optimizer"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"checkpoint does not fit this model: {exc}") from None
        self.schedule.load_state_dict(ckpt["scheduler"])
        if self.amp is not None:
            self.amp.load_state_dict(ckpt.get("amp") or {})
        if self.compressor is not None:
            if ckpt.get("compressor") is None:
                raise CheckpointError("checkpoint holds no compressor state but compression is set")
            try:
                self.compressor.load_state_dict(ckpt["compressor"])
            except (KeyError, ValueError, RuntimeError) as exc:
                raise CheckpointError(
                    f"compressor state in the checkpoint is unusable: {exc}"
                ) from None
        self.tracker.load_state_dict(ckpt["tracker"])
        self._committed = self.tracker.state_dict()
        self.epochs_done = int(ckpt["epoch"])
        self._elapsed_before = float(ckpt.get("wall_time_s", 0.0))

    def _finished_result(self, stored: dict[str, Any]) -> RunResult:
        result = RunResult.from_dict(stored)
        assert self._read_dir is not None
        post = self._read_dir.root / "post.pt"
        if post.is_file():
            self.model.load_state_dict(load_model_state(post))
        result.model = self.model
        return result

    def _clean_temps(self) -> None:
        if self.run_dir is not None:
            for path in stale_temp_files(self.run_dir.root):
                path.unlink(missing_ok=True)

    # ------------------------------------------------------------------- epochs

    def _run_epoch(self, epoch: int, progress: EpochProgress) -> None:
        """Train, evaluate, log and checkpoint 0-based ``epoch``."""
        start = time.perf_counter()
        lr = self.schedule.start_epoch(epoch)
        stats, compress_time = self._train_pass(epoch, progress)
        row = self._measure(epoch, lr, stats, compress_time, start)
        is_best = self.tracker.update(row, row.pop("_report"))
        row.update(
            is_best=is_best,
            best_epoch=self.tracker.best_epoch,
            best_test_acc=self.tracker.best_test_acc,
        )
        line = {k: row[k] for k in EPOCH_KEYS}
        # the checkpoint (holding this line too) is durable before the metrics line is
        # appended, so a stop between the two leaves a run that resumes (see reconcile)
        saved = [*self.history.rows, line]
        self._save_epoch(epoch, is_best, saved)
        self._saved_history, self.epochs_done = saved, epoch + 1
        self._committed = self.tracker.state_dict()
        if self.run_dir is not None:
            faults.hold(
                "epoch", f"{self.run_dir.root.name}@{epoch + 1}", self.run_dir.root / ".held"
            )
        self.history.append(line)
        progress.end_epoch(row)

    def _train_pass(self, epoch: int, progress: EpochProgress) -> tuple[loop.EpochStats, float]:
        """One pass over the training loader (then ``compressor.epoch_end()``); the epoch's
        stats and the seconds spent in the compressor. DivergedError on NaN/inf."""
        cfg = self.cfg
        loader = loop.make_epoch_loader(
            self.bundle.train,
            self.batch_size,
            shuffle=True,
            seed=cfg.seed,
            epoch=epoch,
            shard=(self.dist.rank, self.dist.world) if self.dist is not None else None,
        )
        total = loop.steps_in_epoch(loader, cfg.max_steps_per_epoch)
        progress.start_epoch(epoch + 1, total)
        # time in the compressor's applications, wherever they ran (PQSGD fuses them into
        # optimizer.step(), where the loop's own timing of compressor.step() cannot see them)
        applied_before = getattr(self.compressor, "time_s", None)
        stats = loop.train_one_epoch(
            self.train_module,
            loader,
            self.optimizer,
            self.compressor,
            self.device,
            total_steps=total,
            on_step=progress.on_step,
            before_step=(
                (lambda step: self.schedule.before_step(step, total))
                if self.schedule.per_step
                else None
            ),
            label_smoothing=cfg.label_smoothing,
            criterion=self.criterion,
            amp=self.amp,
        )
        if self.dist is not None:
            # DDP hands rank 0's buffers to the others at each forward, so after the last one
            # BatchNorm's running statistics differ by rank: rank 0's are the model's
            import torch.distributed as tdist

            with torch.no_grad():
                for b in self.model.buffers():
                    tdist.broadcast(b, src=0)
            # the epoch's running figures over every rank's shard
            loss, correct, samples = self.dist.sum(
                [stats.loss * stats.samples, stats.accuracy * stats.samples, stats.samples],
                self.device,
            )
            stats = dataclasses.replace(
                stats,
                loss=loss / samples if samples else float("nan"),
                accuracy=correct / samples if samples else 0.0,
                samples=int(samples),
            )
        if not math.isfinite(stats.loss) or not _finite_parameters(self.model):
            raise DivergedError(
                f"training diverged in epoch {epoch + 1}: the training loss is {stats.loss} "
                "or the weights hold NaN/inf (try a lower learning rate); the last finished "
                f"epoch ({epoch}) stays saved"
            )
        compress_time = stats.compress_time_s
        if self.compressor is not None:
            t0 = time.perf_counter()
            self.compressor.epoch_end()
            compress_time += time.perf_counter() - t0
            if isinstance(applied_before, float):
                compress_time = float(self.compressor.time_s) - applied_before
        return stats, compress_time

    def _measure(
        self, epoch: int, lr: float, stats: loop.EpochStats, compress_time: float, start: float
    ) -> dict[str, Any]:
        """The epoch's metrics row (evaluating val and test); ``_report`` holds the test
        report for the tracker."""
        eval_start = time.perf_counter()
        train_loss, train_acc = stats.loss, stats.accuracy
        if self.cfg.train_metric == "full":
            full = self.evaluate("train")
            train_loss, train_acc = full["loss"], full["accuracy"]
        val = self.evaluate("val") if self.has_val else None
        test = self.evaluate("test", report=True)
        density = self.density()
        now = time.perf_counter()
        return {
            "epoch": epoch + 1,
            "lr": lr,
            "train_loss": train_loss,
            "train_acc": train_acc,
            "train_metric": self.cfg.train_metric,
            "val_loss": val["loss"] if val else None,
            "val_acc": val["accuracy"] if val else None,
            "test_loss": test["loss"],
            "test_acc": test["accuracy"],
            "test_macro_f1": test["report"]["macro_f1"],
            "density": density,
            "steps": stats.steps,
            "samples": stats.samples,
            "epoch_time_s": now - start,
            "train_time_s": stats.train_time_s,
            "compress_time_s": compress_time,
            "eval_time_s": now - eval_start,
            "_report": test["report"],
        }

    def _save_epoch(self, epoch: int, is_best: bool, history: list[dict[str, Any]]) -> None:
        """best.pt when the epoch is the best, then checkpoint.pt with the metrics ``history``
        up to this epoch (both atomic and fsynced)."""
        if self.run_dir is None:
            return
        if is_best:
            save_checkpoint(
                self.run_dir.best,
                {
                    "epoch": epoch + 1,
                    "model": self.model.state_dict(),
                    "config": self.config,
                    **self._export_info(),
                },
            )
        save_checkpoint(
            self.run_dir.checkpoint, {**self._checkpoint_state(epoch + 1), "history": history}
        )

    def _checkpoint_state(self, epochs_done: int) -> dict[str, Any]:
        return {
            "epoch": epochs_done,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict(),
            "compressor": self.compressor.state_dict() if self.compressor is not None else None,
            "amp": self.amp.state_dict() if self.amp is not None else None,
            "tracker": self.tracker.state_dict(),
            "rng": capture_rng(),
            "config": self.config,
            "wall_time_s": self._wall_time(),
            **self._export_info(),
        }

    def _export_info(self) -> dict[str, Any]:
        """What ``pqcompress.codec.export_run`` needs beside the weights: the model's
        num_classes/input_shape, the data's class names and preprocessing, and the
        compressor's latest parameters (so best.pt can be exported as integer codes)."""
        info: dict[str, Any] = {
            "num_classes": int(self.bundle.num_classes),
            "input_shape": [int(d) for d in self.bundle.input_shape],
            "class_names": [str(c) for c in self.bundle.class_names],
            "preprocessing": _json_safe(self.bundle.preprocessing),
        }
        if self.bundle.input_dtype != "float32":  # token ids: what export and serving take
            info["inputs"] = [s.to_dict() for s in self.bundle.input_specs()]
        applied = getattr(self.compressor, "applied", None)
        if isinstance(applied, Mapping):
            info["compressor_applied"] = {k: _plain(v) for k, v in applied.items()}
        return info

    def _rollback_to_committed(self) -> None:
        """After Ctrl-C or SIGTERM: forget a half-recorded epoch so that the result and
        metrics.jsonl match the checkpoint (the stop may have come between the checkpoint and
        its metrics line)."""
        self.tracker.load_state_dict(self._committed)
        rows = self._saved_history[: self.epochs_done]
        if self.run_dir is not None and self.history.file_rows() != rows:
            self.history.commit(rows)
        self.history.rows = list(rows)

    def _interrupt_message(self) -> str:
        if self.run_dir is None:
            return f"interrupted after {self.epochs_done} epoch(s); in-memory run, nothing saved"
        return (
            f"interrupted: {self.epochs_done} epoch(s) are saved in {self.run_dir.root}; "
            "to continue, run again with resume=True (CLI: --resume) and the same output directory"
        )

    # --------------------------------------------------------------------- post

    def _post_training(self) -> bool:
        return self.compressor is not None and self.compressor.config.schedule == "post"

    def _apply_post(self) -> dict[str, Any]:
        """Compress the trained model once and evaluate it (schedule="post")."""
        assert self.compressor is not None
        t0 = time.perf_counter()
        self.compressor.apply()
        compress_time = time.perf_counter() - t0
        val = self.evaluate("val") if self.has_val else None
        test = self.evaluate("test", report=True)
        if self.run_dir is not None:
            save_checkpoint(
                self.run_dir.root / "post.pt",
                {
                    "epoch": self.epochs_done,
                    "model": self.model.state_dict(),
                    "config": self.config,
                    "compressor": self.compressor.state_dict(),
                    **self._export_info(),
                },
            )
        return {
            "val_loss": val["loss"] if val else None,
            "val_acc": val["accuracy"] if val else None,
            "test_loss": test["loss"],
            "test_acc": test["accuracy"],
            "test_macro_f1": test["report"]["macro_f1"],
            "density": self.density(),
            "compress_time_s": compress_time,
            "test_report": test["report"],
        }

    # ------------------------------------------------------------------- result

    def _wall_time(self) -> float:
        return self._elapsed_before + (time.perf_counter() - self._session_start)

    def _result(self, status: Status, post: dict[str, Any] | None) -> RunResult:
        t = self.tracker
        done = t.best_epoch > 0

        def num(value: float) -> float | None:
            return value if done and not math.isnan(value) else None

        stats = [_plain(s) for s in self.compressor.stats()] if self.compressor else []
        return RunResult(
            status=status,
            epochs_run=self.epochs_done,
            best_epoch=t.best_epoch,
            best_test_acc=num(t.best_test_acc),
            train_acc_at_best=num(t.train_acc_at_best),
            density_at_best=num(t.density_at_best),
            val_acc_at_best=t.val_acc_at_best,
            best_val_acc=t.best_val_acc,
            best_val_epoch=t.best_val_epoch,
            early_stop_metric=t.monitor,
            final=dict(self.history.last),
            post=post,
            wall_time_s=self._wall_time(),
            out_dir=str(self.run_dir.root) if self.run_dir else None,
            compressor_stats=stats,
            test_report_at_best=t.test_report_at_best,
            history=list(self.history.rows),
            config=self.config,
            selection=t.selection,
            test_acc_at_last=_last_test_acc(self.history.last),
            channel_groups=self.compressor.channel_records() if self.compressor else [],
            channels=self.compressor.channel_summary() if self.compressor else None,
            amp=self.amp_mode,
            machine=_machine(self.device),
            model=self.model,
        )


def _threads_per_process(threads: int | None, ctx: distributed.DistContext | None) -> int | None:
    """``train.threads``, or under several processes on one machine the CPU budget shared
    between them (each process otherwise sizes its pools to every CPU)."""
    if threads is not None or ctx is None:
        return threads
    from pqcompress.cpus import threads_for

    return max(1, threads_for(None) // max(1, ctx.local_world))


def _last_test_acc(row: Mapping[str, Any]) -> float | None:
    value = row.get("test_acc")
    return None if value is None else float(value)


def train(
    config: ExperimentConfig,
    out_dir: str | Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Build data and model from the registries and run the Trainer.

    Nothing is written to ``out_dir`` until data and model are built; an existing run there
    raises CheckpointError unless ``resume`` (and a different config does too, on resume).
    The run directory is locked for the whole run: a second process writing it gets
    BusyError naming the holder. The model is built right after
    ``torch.manual_seed(config.train.seed)``; with ``config.init_from`` its weights then come
    from that run or checkpoint (fine-tuning a trained model under compression). On resume the
    run's own checkpoint replaces them.
    """
    if out_dir is None:
        return _train(config, None, resume=resume, progress=progress)
    run_dir = RunDir(Path(out_dir))
    run_dir.check_is_directory()
    if distributed.world_size_from_env() > 1 and os.environ.get("RANK", "0") != "0":
        # under torchrun only rank 0 writes (and holds the lock); the others read
        return _train(config, run_dir, resume=resume, progress=progress)
    with run_dir.locked():  # one writer: a second process gets BusyError before any write
        return _train(config, run_dir, resume=resume, progress=progress)


def _train(
    config: ExperimentConfig, run_dir: RunDir | None, *, resume: bool, progress: bool
) -> RunResult:
    from pqcompress.data.registry import build_dataset
    from pqcompress.models.registry import build_model

    config_dict = config.to_dict()
    if run_dir is not None and os.environ.get("RANK", "0") == "0":
        run_dir.check_can_start(resume)
        saved = run_dir.read_config() if resume else None
        if saved is not None:
            check_same_config(saved, config_dict, run_dir.root)
    apply_threads(config.train.threads)
    bundle = build_dataset(config.dataset, config.data, seed=split_seed(config))
    torch.manual_seed(config.train.seed)
    model = build_model(
        config.model,
        num_classes=bundle.num_classes,
        input_shape=tuple(bundle.input_shape),
        **config.model_args,
    )
    if config.init_from is not None:
        load_initial_weights(model, config.init_from)
    trainer = Trainer(
        model,
        bundle,
        config.train,
        config.compression,
        run_dir.root if run_dir is not None else None,
        progress=progress,
        resume=resume,
        config_dict=config_dict,
        criterion=distillation_criterion(config, bundle),
    )
    return trainer.fit()


def distillation_criterion(config: ExperimentConfig, bundle: DataBundle) -> loop.Criterion | None:
    """The loss of ``config.distill`` with its teacher loaded (None without ``distill``)."""
    spec = config.distill
    if spec is None:
        return None
    teacher = load_teacher(spec.teacher, config, bundle)
    loss = DistillationLoss(spec.temperature, spec.soft_weight, spec.hard_weight)
    return DistillationCriterion(loss, teacher=TeacherEnsemble([teacher]))


def load_teacher(source: str | Path, config: ExperimentConfig, bundle: DataBundle) -> nn.Module:
    """The teacher of ``distill.teacher``: a run directory (its config names the model) or a
    checkpoint file (of a run, or of this run's model). ConfigError when the teacher trained on
    another dataset, or on images this run validates on (another split seed)."""
    from pqcompress.models.registry import build_model

    path = Path(source)
    saved = read_run_config(path if path.is_dir() else path.parent) or {}
    if saved and saved.get("dataset") != config.dataset:
        raise ConfigError(
            f"distill.teacher: {source} was trained on {saved.get('dataset')!r}, this run "
            f"trains on {config.dataset!r}; expected a teacher of the same dataset"
        )
    theirs, ours = split_seed_of(source, config.dataset), split_seed(config)
    if theirs is not None and theirs != ours:
        raise ConfigError(
            f"distill.teacher: {source} trained on the split of seed {theirs}, part of which "
            f"this run (split seed {ours}) validates on; set data.split_seed: {theirs}"
        )
    teacher = build_model(
        saved.get("model", config.model),
        num_classes=bundle.num_classes,
        input_shape=tuple(bundle.input_shape),
        **((saved.get("model_args") or {}) if saved else config.model_args),
    )
    load_initial_weights(teacher, source, what="distill.teacher")
    return teacher


def _machine(device: torch.device) -> dict[str, Any]:
    """What a run's times were measured on (``RunResult.machine``)."""
    out: dict[str, Any] = {"device": str(device), "cpu": cpu_model()}
    out["threads"] = torch.get_num_threads()
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
    return out


def split_seed(config: ExperimentConfig) -> int:
    """The seed of the run's validation carve-out and subset: ``data.split_seed``; else, when
    it fine-tunes a run (``init_from``) on the same dataset, that run's split
    (``checkpoint.split_seed_of``); else ``train.seed``. (``build_dataset`` itself honours
    ``data.split_seed``.)"""
    if config.data.split_seed is not None:
        return config.data.split_seed
    inherited = split_seed_of(config.init_from, config.dataset)
    if inherited is not None and inherited != config.train.seed:
        _log.info(
            "init_from: the validation split of %s (split seed %d) is kept, so the images "
            "it trained on stay out of validation",
            config.init_from,
            inherited,
        )
    return config.train.seed if inherited is None else inherited


def load_initial_weights(model: nn.Module, source: str | Path, *, what: str = "init_from") -> None:
    """Load the weights a run directory (its ``best.pt``) or a checkpoint file holds into
    ``model``; CheckpointError (naming the setting, ``what``) when the source is missing or its
    tensors do not fit."""
    path = Path(source)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{what}: {source} is neither a finished run directory (with best.pt) nor a "
            "checkpoint file"
        )
    state = load_model_state(path)
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    wrong = sorted(k for k in own.keys() & state.keys() if own[k].shape != state[k].shape)
    if missing or extra or wrong:
        parts = []
        for kind, keys in (("missing", missing), ("unexpected", extra), ("wrong shape", wrong)):
            if keys:
                parts.append(f"{kind}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise CheckpointError(
            f"{what}: the weights in {path} do not fit this model ({'; '.join(parts)}); "
            "expected a run of the same model and model_args"
        )
    model.load_state_dict(state)
