"""The distillation study end to end (docs/method.md §4-§6): teachers, student alone, distilled,
distilled + pruned (std / a), post-training quantizations, and distillation under P->Q.

Every stage writes into one output folder and is reused on a rerun (training runs resume from
their checkpoints), so an interrupted ``pqcompress distill`` continues where it stopped::

    DIR/recipe.yaml               the recipe (a rerun with another recipe is refused)
    DIR/teachers/NAME/            each teacher's run directory and model.pqz (float32)
    DIR/teachers/logits.pt        the teachers' logits on the training images (the cache)
    DIR/student/ DIR/distilled/   run directories of the student alone and distilled
    DIR/distilled_pq/LABEL/       distillation with P->Q after every step, one per entry
    DIR/models/                   every evaluated file (.pqz, .onnx)
    DIR/summary.json              one row per model (see :data:`ROW_KEYS`)
    DIR/details.json              the pruning sweep, the P->Q candidates, timings

Accuracies, precisions, recalls and F1 are fractions in [0, 1] on the test split; for two
classes precision/recall/F1 are those of the positive class (class 1, "pneumonia"), for more
classes their macro means.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pqcompress import codec
from pqcompress.atomic import write_json_atomic, write_text_atomic
from pqcompress.codec.sources import load_model, save_pqz
from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig, dump_yaml, to_dict
from pqcompress.data.arrays import ArrayDataset
from pqcompress.data.batches import evaluation_view, input_batches
from pqcompress.data.bundle import DataBundle
from pqcompress.data.loader import make_loader
from pqcompress.data.registry import build_dataset
from pqcompress.distill import (
    DistillationCriterion,
    DistillationLoss,
    TeacherCache,
    TeacherEnsemble,
)
from pqcompress.errors import ConfigError, PQCError
from pqcompress.export.point import run_point
from pqcompress.metrics.classification import classification_report, evaluate_model
from pqcompress.models.registry import build_model
from pqcompress.models.torchvision_zoo import torchvision_teacher
from pqcompress.posttrain import prune_std, select_tensors
from pqcompress.studies.distill_recipe import DistillRecipe, TeacherSpec
from pqcompress.train.rundir import RunDir, check_same_config, config_differences
from pqcompress.train.trainer import Trainer

ROW_KEYS = ("accuracy", "precision", "recall", "f1", "bytes", "file")
SUMMARY = "summary.json"
DETAILS = "details.json"
Log = Callable[[str], None]


class DistillationError(PQCError):
    """A distillation run cannot go on (say why and what is expected)."""


# --------------------------------------------------------------------------- evaluation


def evaluate(model: nn.Module, dataset: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy, precision, recall, F1 (positive class for 2 classes, else macro), the
    confusion matrix and macro F1 of ``model`` on ``dataset``."""
    loader = make_loader(evaluation_view(dataset), 256, shuffle=False)
    out = evaluate_model(model, loader, "cpu", return_predictions=True)
    rep = classification_report(out["predictions"], out["labels"], num_classes)
    if num_classes == 2:
        precision, recall, f1 = rep["precision"][1], rep["recall"][1], rep["f1"][1]
    else:
        precision, recall, f1 = rep["macro_precision"], rep["macro_recall"], rep["macro_f1"]
    return {
        "accuracy": rep["accuracy"],
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "macro_f1": rep["macro_f1"],
        "confusion_matrix": rep["confusion_matrix"],
        "n": out["n"],
    }


def accuracy_on(model: nn.Module, dataset: Any) -> float:
    loader = make_loader(evaluation_view(dataset), 256, shuffle=False)
    return float(evaluate_model(model, loader, "cpu")["accuracy"])


def weight_density(model: nn.Module) -> float:
    """Nonzero share of all conv/linear weights."""

    tensors = select_tensors(model, "both", "weights").values()
    total = sum(t.numel() for t in tensors)
    nonzero = sum(int(torch.count_nonzero(t)) for t in tensors)
    return nonzero / total if total else 1.0


def choose_prune(candidates: list[dict[str, Any]], tolerance: float = 0.0) -> dict[str, Any]:
    """The study's rule: best accuracy, and among candidates within ``tolerance`` points of it
    the one with the lowest density (the most pruning); ties then go to the larger a.

    Each candidate holds ``a``, ``accuracy`` (fraction) and ``density``.
    """
    if not candidates:
        raise ConfigError("choose_prune needs at least one candidate")
    best = max(c["accuracy"] for c in candidates)
    eligible = [c for c in candidates if c["accuracy"] >= best - tolerance / 100.0 - 1e-12]
    return min(eligible, key=lambda c: (c["density"], -c["accuracy"], -c["a"]))


def choose_smallest(
    candidates: list[dict[str, Any]], reference: float, tolerance: float = 0.0
) -> tuple[dict[str, Any], bool]:
    """The smallest file (``bytes``) whose ``accuracy`` is within ``tolerance`` points of
    ``reference``; (the most accurate candidate, False) when none is."""
    if not candidates:
        raise ConfigError("choose_smallest needs at least one candidate")
    keep = [c for c in candidates if c["accuracy"] >= reference - tolerance / 100.0 - 1e-12]
    if keep:
        return min(keep, key=lambda c: (c["bytes"], -c["accuracy"])), True
    return max(candidates, key=lambda c: (c["accuracy"], -c["bytes"])), False


# --------------------------------------------------------------------------- the run


class DistillationRun:
    """One distillation study in ``out_dir``; :meth:`run` does (or reuses) every stage."""

    def __init__(
        self,
        recipe: DistillRecipe,
        out_dir: str | Path,
        *,
        progress: bool = True,
        log: Log | None = None,
    ) -> None:
        self.recipe = recipe
        self.out = Path(out_dir)
        self.progress = progress
        self.log: Log = log or (lambda _msg: None)
        self.rows: dict[str, dict[str, Any]] = {}
        self.details: dict[str, Any] = {"timings_s": {}}
        self.bundle: DataBundle | None = None

    # ------------------------------------------------------------------ public

    def run(self) -> dict[str, dict[str, Any]]:
        """Every stage; returns (and writes to ``summary.json``) the rows keyed by model."""
        self._claim_folder()

        r = self.recipe
        self.bundle = build_dataset(r.dataset, r.data, seed=r.seed)
        ensemble, teacher_bytes, teacher_files = self._stage("teachers", self._teachers)
        self.teacher_bytes = teacher_bytes
        self._stage("teacher_eval", lambda: self._teacher_rows(ensemble, teacher_files))
        student = self._stage("student", lambda: self._student("student", None, None))
        criterion, bundle = self._stage("teacher_cache", lambda: self._criterion(ensemble))
        distilled = self._stage(
            "distilled", lambda: self._student("distilled", criterion, None, bundle)
        )
        self.log(
            f"student alone {100 * student['accuracy']:.2f}%, "
            f"distilled {100 * distilled['accuracy']:.2f}% (test)"
        )
        pruned = self._stage("distilled_pruned", self._prune)
        for q in r.quantize:
            self._stage(q, lambda q=q: self._quantize(q, pruned))
        if r.compression:
            self._stage("distilled_pq", lambda: self._pq(criterion, bundle))
        for row in self.rows.values():
            if row.get("bytes"):
                row["ratio_to_teacher"] = self.teacher_bytes / row["bytes"]
        write_json_atomic(self.out / SUMMARY, self.rows)
        write_json_atomic(self.out / DETAILS, self.details)
        return self.rows

    # ------------------------------------------------------------------ plumbing

    def _stage(self, name: str, fn: Callable[[], Any]) -> Any:
        t0 = time.perf_counter()
        out = fn()
        self.details["timings_s"][name] = round(time.perf_counter() - t0, 3)
        return out

    def _claim_folder(self) -> None:
        """Write recipe.yaml, or check that the folder's recipe trains the same models.

        What the trained runs depend on (data, teachers, combine, student, distillation,
        training, seed) must match; the cheap stages after them (``prune``, ``quantize``)
        and the P->Q candidates (``compression``, ``pq``: each run has its own folder) may
        change between runs, e.g. to add candidates."""

        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "recipe.yaml"
        current = json.loads(json.dumps(self.recipe.to_dict()))
        if path.exists():
            try:
                saved = json.loads(json.dumps(DistillRecipe.from_yaml(path).to_dict()))
            except PQCError as exc:
                raise DistillationError(f"{path} is not a readable recipe ({exc})") from None
            free = ("prune", "quantize", "compression", "pq")
            diff = config_differences(
                {k: v for k, v in saved.items() if k not in free},
                {k: v for k, v in current.items() if k not in free},
            )
            if diff:
                raise DistillationError(
                    f"{self.out} holds a distillation run of another recipe (differs in "
                    f"{', '.join(diff)}); pass a new --out folder, or delete this one"
                )
        write_text_atomic(path, dump_yaml(self.recipe))

    @property
    def _bundle(self) -> DataBundle:
        assert self.bundle is not None
        return self.bundle

    def _models_dir(self) -> Path:
        path = self.out / "models"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _row(self, key: str, metrics: dict[str, Any], file: Path | None, **extra: Any) -> dict:
        row = {**metrics, "bytes": file.stat().st_size if file else None}
        row["file"] = str(file.relative_to(self.out)) if file else None
        row.update(extra)
        self.rows[key] = row
        return row

    def _experiment(self, model: str, model_args: dict, train: TrainConfig, compression: Any):
        r = self.recipe
        return ExperimentConfig(
            model=model,
            dataset=r.dataset,
            model_args=dict(model_args),
            data=r.data,
            train=train,
            compression=compression,
        )

    # ------------------------------------------------------------------ teachers

    def _teachers(self) -> tuple[TeacherEnsemble, int, list[str]]:
        members: dict[str, nn.Module] = {}
        files: list[str] = []
        total = 0
        for spec in self.recipe.teachers:
            model, pqz = self._teacher(spec)
            members[spec.label] = model
            metrics = evaluate(model, self._bundle.test, self._bundle.num_classes)
            self._row(spec.label, metrics, pqz, role="teacher member", source=self._source(spec))
            self.log(f"teacher {spec.label}: {100 * metrics['accuracy']:.2f}% (test)")
            total += pqz.stat().st_size
            files.append(
                str(pqz.relative_to(self.out)) if pqz.is_relative_to(self.out) else str(pqz)
            )
        return TeacherEnsemble(members, self.recipe.combine), total, files

    @staticmethod
    def _source(spec: TeacherSpec) -> str:
        if spec.model:
            return f"registry model {spec.model}, trained here"
        if spec.torchvision:
            pre = "ImageNet-pretrained" if spec.pretrained else "random-init"
            return f"torchvision {spec.torchvision} ({pre}), trained here"
        return f"loaded from {spec.run or spec.pqz}"

    def _teacher(self, spec: TeacherSpec) -> tuple[nn.Module, Path]:
        if spec.pqz:
            path = Path(spec.pqz)
            if not path.is_file():
                raise DistillationError(f"teacher {spec.label}: {path} is not a file (.pqz)")
            return codec.load(path).eval(), path
        if spec.run:
            run = Path(spec.run)
            if not (run / "best.pt").is_file():
                raise DistillationError(
                    f"teacher {spec.label}: {run} is not a finished run directory (no best.pt)"
                )
            pqz = self.out / "teachers" / spec.label / "model.pqz"
            return self._export(run, pqz), pqz
        run_dir = self.out / "teachers" / spec.label
        cfg = self.recipe.teacher_train_config(spec)
        self.log(f"teacher {spec.label}: training ({cfg.epochs} epochs) in {run_dir}")
        if spec.torchvision:
            self._train_torchvision(spec, cfg, run_dir)
        else:
            assert spec.model is not None
            point = run_point(
                self._experiment(spec.model, spec.model_args, cfg, None),
                run_dir,
                progress=self.progress,
                onnx="none",
            )
            if point.pqz is None:
                raise DistillationError(
                    f"teacher {spec.label}: its run in {run_dir} ended {point.result.get('status')}"
                )
            return codec.load(point.pqz).eval(), point.pqz
        return self._export(run_dir, run_dir / "model.pqz"), run_dir / "model.pqz"

    def _train_torchvision(self, spec: TeacherSpec, cfg: TrainConfig, run_dir: Path) -> None:
        b = self._bundle
        torch.manual_seed(cfg.seed)
        assert spec.torchvision is not None
        model = torchvision_teacher(
            spec.torchvision,
            num_classes=b.num_classes,
            input_shape=tuple(b.input_shape),
            pretrained=spec.pretrained,
            freeze=spec.freeze,
            **spec.model_args,
        )
        Trainer(model, b, cfg, None, run_dir, progress=self.progress, resume=True).fit()
        torch.save(model.state_dict(), run_dir / "weights.pt")

    def _export(self, run_dir: Path, pqz: Path) -> nn.Module:
        return codec.load(codec.export_best(run_dir, pqz, onnx="none")).eval()

    def _teacher_rows(self, ensemble: TeacherEnsemble, files: list[str]) -> None:
        b = self._bundle
        for combine in ("mean", "vote"):
            view = TeacherEnsemble(dict(ensemble.members.items()), combine)
            metrics = evaluate(view, b.test, b.num_classes)
            key = "teacher" if combine == ensemble.combine else f"teacher_{combine}"
            self.rows[key] = {
                **metrics,
                "bytes": self.teacher_bytes,
                "file": files,
                "role": f"ensemble ({combine} of {', '.join(ensemble.names)})",
            }
        self.log(
            f"teacher ensemble ({ensemble.combine}): {100 * self.rows['teacher']['accuracy']:.2f}%"
        )

    # ------------------------------------------------------------------ students

    def _criterion(self, ensemble: TeacherEnsemble) -> tuple[DistillationCriterion, DataBundle]:
        d = self.recipe.distill
        loss = DistillationLoss(d.temperature, d.soft_weight, d.hard_weight, t_squared=d.t_squared)
        bundle = self._bundle
        train = bundle.train
        if d.cache and isinstance(train, ArrayDataset):
            cache = TeacherCache(self.out / "teachers" / "logits.pt")
            logits = cache.get(ensemble, train)
            self.details["teacher_cache"] = {
                "path": "teachers/logits.pt",
                "computed_now": cache.computed,
                "shape": list(logits.shape),
            }
            train = train.with_extra("teacher", logits).with_target_extra("teacher")
            bundle = dataclasses.replace(bundle, train=train)
            return DistillationCriterion(loss, combine=ensemble.combine), bundle
        self.details["teacher_cache"] = {"path": None, "live": True}
        return DistillationCriterion(loss, combine=ensemble.combine, teacher=ensemble), bundle

    def _student(
        self,
        key: str,
        criterion: DistillationCriterion | None,
        compression: CompressionConfig | None,
        bundle: DataBundle | None = None,
        run_dir: Path | None = None,
    ) -> dict[str, Any]:
        r = self.recipe
        b = bundle or self._bundle
        cfg = r.student_train_config()
        run_dir = run_dir or self.out / key
        config = self._experiment(r.student.model, r.student.model_args, cfg, compression)
        saved = RunDir(run_dir).read_config()
        if saved is not None:
            check_same_config(saved, config.to_dict(), run_dir)
        self.log(f"{key}: training the student ({cfg.epochs} epochs) in {run_dir}")
        torch.manual_seed(cfg.seed)
        model = build_model(
            r.student.model,
            num_classes=b.num_classes,
            input_shape=tuple(b.input_shape),
            **r.student.model_args,
        )
        Trainer(
            model,
            b,
            cfg,
            compression,
            run_dir,
            progress=self.progress,
            resume=True,
            config_dict=config.to_dict(),
            criterion=criterion,
        ).fit()
        pqz = self._models_dir() / f"{key.replace('/', '-')}.pqz"
        best = self._export(run_dir, pqz)
        metrics = evaluate(best, self._bundle.test, self._bundle.num_classes)
        val = self._bundle.val
        return self._row(
            key,
            metrics,
            pqz,
            val_accuracy=accuracy_on(best, val) if val is not None else None,
            density=weight_density(best),
            run_dir=str(run_dir.relative_to(self.out)),
        )

    # ------------------------------------------------------------------ pruning

    def _split(self, name: str) -> Any:
        b = self._bundle
        if name == "val":
            if b.val is None:
                raise DistillationError(f"dataset {b.name} has no validation split to choose on")
            return b.val
        return b.test

    def _prune(self) -> nn.Module:
        p = self.recipe.prune
        source = self._models_dir() / "distilled.pqz"
        base, manifest = load_model(source)
        split = self._split(p.choose_on)
        sweep = []
        for a in p.a:
            model = copy.deepcopy(base)
            with torch.no_grad():
                prune_std(model, 1.0 / a, layers=p.layers, params="weights")
            sweep.append(
                {"a": a, "accuracy": accuracy_on(model, split), "density": weight_density(model)}
            )
        chosen = choose_prune(sweep, p.tolerance)
        self.details["prune_sweep"] = {
            "choose_on": p.choose_on,
            "tolerance_points": p.tolerance,
            "rule": "best accuracy; within tolerance of it, the lowest density",
            "candidates": sweep,
            "chosen_a": chosen["a"],
        }
        model = copy.deepcopy(base)
        with torch.no_grad():
            prune_std(model, 1.0 / chosen["a"], layers=p.layers, params="weights")
        meta = {"distill": {"stage": "distilled_pruned", "a": chosen["a"]}}
        path = save_pqz(model, self._models_dir() / "distilled_pruned.pqz", manifest, metadata=meta)
        metrics = evaluate(codec.load(path).eval(), self._bundle.test, self._bundle.num_classes)
        self._row(
            "distilled_pruned",
            metrics,
            path,
            a=chosen["a"],
            density=chosen["density"],
            pruned_pct=100.0 * (1.0 - chosen["density"]),
        )
        self.log(
            f"distilled + pruned (a={chosen['a']}, {100 * (1 - chosen['density']):.1f}% pruned): "
            f"{100 * metrics['accuracy']:.2f}%"
        )
        self.pruned_manifest = manifest
        return model

    # ------------------------------------------------------------------ quantization

    def _quantize(self, kind: str, model: nn.Module) -> None:
        b = self._bundle
        models = self._models_dir()
        shape = tuple(b.input_shape)
        try:
            if kind == "float16":
                path = save_pqz(
                    model,
                    models / "float16.pqz",
                    self.pruned_manifest,
                    float_dtype="float16",
                    metadata={"distill": {"stage": "float16"}},
                )
                runnable: nn.Module = codec.load(path).eval()
                runtime = "torch (float16 weights, decoded to float32)"
            else:
                from pqcompress.export import export_onnx, export_onnx_dynamic_int8, load_onnx

                if kind == "dynamic_int8":
                    path = export_onnx_dynamic_int8(
                        model, models / "dynamic_int8.onnx", input_shape=shape
                    )
                    runtime = "ONNX Runtime (int8 weights, activations quantized per batch)"
                else:
                    path = export_onnx(
                        model,
                        models / "int8.onnx",
                        input_shape=shape,
                        int8=True,
                        calibration=self._calibration(),
                    )
                    runtime = "ONNX Runtime (static int8 QDQ, calibrated on training images)"
                runnable = load_onnx(path, threads=1)
        except (ImportError, PQCError) as exc:
            self.rows[kind] = {"skipped": f"{type(exc).__name__}: {exc}"}
            self.log(f"{kind}: skipped ({exc})")
            return
        metrics = evaluate(runnable, b.test, b.num_classes)
        self._row(kind, metrics, path, runtime=runtime, of="distilled_pruned")
        self.log(f"{kind}: {100 * metrics['accuracy']:.2f}%, {path.stat().st_size:,} B")

    def _calibration(self, batches: int = 8, size: int = 32) -> list[torch.Tensor]:
        loader = make_loader(evaluation_view(self._bundle.train), size, shuffle=True, seed=0)
        return input_batches(loader, batches)

    # ------------------------------------------------------------------ P->Q

    def _pq(self, criterion: DistillationCriterion, bundle: DataBundle) -> None:
        r = self.recipe
        candidates = []
        for i, comp in enumerate(r.compression):
            label = f"{i}-{comp.mode}-a{comp.alpha:g}-b{comp.bits}"
            if comp.target_density is not None:
                label += f"-d{comp.target_density:g}"
            key = f"distilled_pq/{label}"
            run_dir = self.out / "distilled_pq" / label
            row = self._student(key, criterion, comp, bundle, run_dir)
            row["compression"] = to_dict(comp)
            self.log(f"{key}: {100 * row['accuracy']:.2f}%, {row['bytes']:,} B")
            candidates.append({**row, "key": key})
        on = r.pq.choose_on
        metric = "val_accuracy" if on == "val" else "accuracy"
        ref = self.rows["distilled"][metric]
        scored = [{**c, "accuracy": c[metric], "test_accuracy": c["accuracy"]} for c in candidates]
        chosen, kept = choose_smallest(scored, ref, r.pq.tolerance)
        row = dict(self.rows[chosen["key"]])
        row.update(chosen_from=chosen["key"], keeps_distilled_accuracy=kept)
        self.rows["distilled_pq"] = row
        self.details["pq"] = {
            "choose_on": on,
            "tolerance_points": r.pq.tolerance,
            "reference_accuracy": ref,
            "rule": "the smallest .pqz within tolerance of the distilled student's accuracy",
            "candidates": [c["key"] for c in candidates],
            "chosen": chosen["key"],
            "kept": kept,
        }


def run_distillation(
    recipe: DistillRecipe | str | Path,
    out_dir: str | Path,
    *,
    progress: bool = True,
    log: Log | None = None,
) -> dict[str, dict[str, Any]]:
    """Run (or continue) the distillation study of ``recipe`` in ``out_dir``; the rows of
    ``summary.json`` keyed ``teacher``, each member's name, ``student``, ``distilled``,
    ``distilled_pruned``, each quantization and (with ``compression:``) ``distilled_pq``."""
    if not isinstance(recipe, DistillRecipe):
        recipe = DistillRecipe.from_yaml(recipe)
    return DistillationRun(recipe, out_dir, progress=progress, log=log).run()
