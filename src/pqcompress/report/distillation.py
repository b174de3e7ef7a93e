"""The distillation study's Tables I-IV from a ``pqcompress distill`` folder, ours beside theirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_text_atomic
from pqcompress.report.errors import ReportError
from pqcompress.report.published import published
from pqcompress.report.table_format import Table, num, pct, pct_value

# theirs (docs/method.md §6; report/published/distillation_pneumonia.yaml): accuracy %,
# precision, recall, F1; quantized rows: accuracy %, F1, KB, ratio to the unquantized student
_THEIRS = published("distillation_pneumonia")
THEIR_MEMBERS = dict(_THEIRS["members"])
THEIR_MODELS = {
    k: (v["accuracy"], v["precision"], v["recall"], v["f1"]) for k, v in _THEIRS["models"].items()
}
THEIR_QUANTIZED = {
    k: (v["accuracy"], v["f1"], v["kb"], v["ratio"]) for k, v in _THEIRS["quantized"].items()
}
THEIR_TEACHER_MB = float(_THEIRS["teacher_mb"])
SUMMARY, DETAILS = "summary.json", "details.json"


def is_distillation_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / SUMMARY).is_file() and (p / "recipe.yaml").is_file()


def _read(folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        rows = json.loads((folder / SUMMARY).read_text(encoding="utf-8"))
        details_path = folder / DETAILS
        details = json.loads(details_path.read_text("utf-8")) if details_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read the distillation summary in {folder}: {exc}") from None
    if not isinstance(rows, dict) or "teacher" not in rows:
        raise ReportError(f"{folder / SUMMARY} is not a distillation summary (no 'teacher' row)")
    return rows, details


def _kb(b: int | None) -> str:
    return "-" if not b else f"{b / 1024:.2f}"


def members_table(rows: dict[str, Any]) -> Table:
    members = [k for k, r in rows.items() if r.get("role") == "teacher member"]
    ensembles = [k for k in ("teacher", "teacher_vote", "teacher_mean") if k in rows]
    header = ("model", "accuracy %", "F1", "MB")
    body, records = [], []
    for key in members + ensembles:
        r = rows[key]
        label = r.get("role", key) if key.startswith("teacher") else key
        body.append((label, pct(r["accuracy"]), num(r["f1"], ".3f"), num(r["bytes"] / 2**20)))
        records.append(
            {"model": key, "accuracy": pct_value(r["accuracy"]), "f1": r["f1"], "bytes": r["bytes"]}
        )
    theirs = ", ".join(f"{k} {v:.2f}" for k, v in THEIR_MEMBERS.items())
    return Table.of(
        "distill_members",
        "Table I: teacher ensemble members (test accuracy)",
        header,
        body,
        records,
        (
            f"theirs (ImageNet-pretrained, chest X-ray 224 px): {theirs}; ensemble {THEIR_TEACHER_MB:g} MB",
        ),
        empty=("model", "accuracy", "f1", "bytes"),
    )


def models_table(rows: dict[str, Any]) -> Table:
    keys = [
        k
        for k in ("teacher", "student", "distilled", "distilled_pruned", "distilled_pq")
        if k in rows
    ]
    header = ("model", "accuracy %", "precision", "recall", "F1", "theirs: acc %", "P", "R", "F1")
    body, records = [], []
    for key in keys:
        r = rows[key]
        t = THEIR_MODELS.get(key)
        their = (
            (num(t[0]), num(t[1], ".3f"), num(t[2], ".3f"), num(t[3], ".3f")) if t else ("-",) * 4
        )
        body.append(
            (
                key,
                pct(r["accuracy"]),
                num(r["precision"], ".3f"),
                num(r["recall"], ".3f"),
                num(r["f1"], ".3f"),
                *their,
            )
        )
        records.append(
            {
                "model": key,
                "accuracy": pct_value(r["accuracy"]),
                "precision": r["precision"],
                "recall": r["recall"],
                "f1": r["f1"],
                "their_accuracy": t[0] if t else None,
            }
        )
    return Table.of(
        "distill_models",
        "Table II: teacher, student alone, distilled, distilled + pruned (test)",
        header,
        body,
        records,
        (
            "precision / recall / F1 of the positive class (pneumonia); distilled_pq is ours "
            "(distillation with P->Q after every step), the study has no such row",
        ),
        empty=("model", "accuracy", "precision", "recall", "f1", "their_accuracy"),
    )


def prune_table(rows: dict[str, Any], details: dict[str, Any]) -> Table:
    sweep = details.get("prune_sweep") or {}
    chosen = sweep.get("chosen_a")
    body, records = [], []
    for c in sweep.get("candidates", []):
        mark = "chosen" if c["a"] == chosen else ""
        body.append((num(c["a"], "g"), pct(c["accuracy"]), num(100 * (1 - c["density"])), mark))
        records.append(
            {
                "a": c["a"],
                "accuracy": pct_value(c["accuracy"]),
                "pruned_pct": round(100 * (1 - c["density"]), 4),
                "chosen": bool(mark),
            }
        )
    split = sweep.get("choose_on", "val")
    return Table(
        "distill_prune",
        f"Table III: pruning the distilled student at threshold std / a ({split} accuracy)",
        ("a", f"{split} accuracy %", "% pruned", ""),
        tuple(body),
        ("a", "accuracy", "pruned_pct", "chosen"),
        tuple(records),
        (
            f"rule: {sweep.get('rule', '-')} (tolerance {sweep.get('tolerance_points', 0)} points); "
            "theirs: a = 1..6 per member, 23-91% pruned",
        ),
    )


def quantized_table(rows: dict[str, Any]) -> Table:
    keys = [
        k
        for k in ("distilled_pruned", "dynamic_int8", "float16", "int8", "distilled_pq")
        if k in rows
    ]
    base = rows.get("distilled_pruned", {}).get("bytes")
    teacher = rows["teacher"]["bytes"]
    header = (
        "model",
        "file",
        "accuracy %",
        "F1",
        "KB",
        "ratio",
        "vs teacher",
        "theirs: acc %",
        "F1",
        "KB",
        "ratio",
    )
    body, records = [], []
    for key in keys:
        r = rows[key]
        if "skipped" in r:
            body.append((key, "skipped", *("-",) * 9))
            continue
        t = THEIR_QUANTIZED.get(key)
        ratio = base / r["bytes"] if base and r["bytes"] else None
        vs = teacher / r["bytes"] if r["bytes"] else None
        their = (num(t[0]), num(t[1], ".3f"), num(t[2]), num(t[3])) if t else ("-",) * 4
        body.append(
            (
                key,
                Path(str(r["file"])).name,
                pct(r["accuracy"]),
                num(r["f1"], ".3f"),
                _kb(r["bytes"]),
                num(ratio),
                f"{vs:,.0f}x" if vs else "-",
                *their,
            )
        )
        records.append(
            {
                "model": key,
                "accuracy": pct_value(r["accuracy"]),
                "f1": r["f1"],
                "bytes": r["bytes"],
                "ratio": ratio,
                "vs_teacher": vs,
            }
        )
    return Table.of(
        "distill_quantized",
        "Table IV: post-training quantization of the distilled + pruned student (test)",
        header,
        body,
        records,
        (
            "ratio: bytes of distilled_pruned / bytes of the row; vs teacher: the ensemble's "
            f"bytes ({teacher:,}) / the row's; theirs are TFLite files, teacher ensemble "
            f"{THEIR_TEACHER_MB:g} MB",
        ),
        empty=("model", "accuracy", "f1", "bytes", "ratio", "vs_teacher"),
    )


def pq_table(rows: dict[str, Any], details: dict[str, Any]) -> Table:
    keys = [k for k in rows if k.startswith("distilled_pq/")]
    chosen = (details.get("pq") or {}).get("chosen")
    teacher = rows["teacher"]["bytes"]
    body, records = [], []
    for key in keys:
        r = rows[key]
        c = r.get("compression") or {}
        mark = "chosen" if key == chosen else ""
        val = r.get("val_accuracy")
        body.append(
            (
                key.split("/", 1)[1],
                num(c.get("alpha"), "g"),
                str(c.get("bits", "-")),
                pct(val),
                pct(r["accuracy"]),
                num(r["f1"], ".3f"),
                pct(r.get("density")),
                f"{r['bytes']:,}",
                f"{teacher / r['bytes']:,.0f}x",
                mark,
            )
        )
        records.append(
            {
                "candidate": key,
                "alpha": c.get("alpha"),
                "bits": c.get("bits"),
                "val_accuracy": pct_value(val),
                "accuracy": pct_value(r["accuracy"]),
                "f1": r["f1"],
                "density": r.get("density"),
                "bytes": r["bytes"],
                "chosen": bool(mark),
            }
        )
    pq = details.get("pq") or {}
    return Table(
        "distill_pq",
        "Ours: distillation under P->Q after every step (test accuracy; chosen on "
        f"{pq.get('choose_on', 'val')})",
        (
            "candidate",
            "alpha",
            "bits",
            "val acc %",
            "test acc %",
            "F1",
            "density %",
            "bytes",
            "vs teacher",
            "",
        ),
        tuple(body),
        (
            "candidate",
            "alpha",
            "bits",
            "val_accuracy",
            "accuracy",
            "f1",
            "density",
            "bytes",
            "chosen",
        ),
        tuple(records),
        (
            f"rule: {pq.get('rule', '-')} (tolerance {pq.get('tolerance_points', 0)} points, "
            f"reference {pct(pq.get('reference_accuracy'))}%)",
        ),
    )


def build_distillation_report(folder: str | Path, out_dir: str | Path) -> list[Path]:
    """Write Tables I-IV (.md/.csv/.json each), the P->Q candidates when there are any, and
    ``report.md`` (all of them) into ``out_dir``."""
    folder, out = Path(folder), Path(out_dir)
    rows, details = _read(folder)
    out.mkdir(parents=True, exist_ok=True)
    tables = [
        members_table(rows),
        models_table(rows),
        prune_table(rows, details),
        quantized_table(rows),
    ]
    if any(k.startswith("distilled_pq/") for k in rows):
        tables.append(pq_table(rows, details))
    written: list[Path] = []
    for t in tables:
        written += t.write(out)
    report = out / "report.md"
    write_text_atomic(
        report,
        "# Distillation study: ours beside theirs\n\n" + "\n".join(t.to_markdown() for t in tables),
    )
    return [report, *written]
