"""The distillation study's Tables I-IV from a ``pqcompress distill`` folder, ours beside theirs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pqcompress.atomic import write_text_atomic
from pqcompress.report.errors import ReportError
from pqcompress.report.published import published
from pqcompress.report.table_format import Column, Table, num, pct, pct_value

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
    C = Column
    columns = (
        C("model", "model", lambda k: k, show=lambda k: rows[k].get("role", k) if k.startswith("teacher") else k),
        C("accuracy %", "accuracy", lambda k: pct_value(rows[k]["accuracy"]), show=lambda k: pct(rows[k]["accuracy"])),
        C("F1", "f1", lambda k: rows[k]["f1"], fmt=lambda f: num(f, ".3f")),
        C("MB", "bytes", lambda k: rows[k]["bytes"], fmt=lambda b: num(b / 2**20)),
    )  # fmt: skip
    theirs = ", ".join(f"{k} {v:.2f}" for k, v in THEIR_MEMBERS.items())
    return Table.from_columns(
        "distill_members",
        "Table I: teacher ensemble members (test accuracy)",
        columns,
        members + ensembles,
        (
            f"theirs (ImageNet-pretrained, chest X-ray 224 px): {theirs}; ensemble {THEIR_TEACHER_MB:g} MB",
        ),
    )


def models_table(rows: dict[str, Any]) -> Table:
    keys = [
        k
        for k in ("teacher", "student", "distilled", "distilled_pruned", "distilled_pq")
        if k in rows
    ]

    C = Column
    columns = (
        C("model", "model", lambda k: k),
        C("accuracy %", "accuracy", lambda k: pct_value(rows[k]["accuracy"]), show=lambda k: pct(rows[k]["accuracy"])),
        *(C(h, key, lambda k, key=key: rows[k][key], fmt=lambda x: num(x, ".3f"))
          for h, key in (("precision", "precision"), ("recall", "recall"), ("F1", "f1"))),
        C("theirs: acc %", "their_accuracy", lambda k: (THEIR_MODELS.get(k) or (None,))[0], fmt=num),
        *(C(h, None, show=lambda k, i=i: num((THEIR_MODELS.get(k) or (None,) * 4)[i], ".3f"))
          for i, h in ((1, "P"), (2, "R"), (3, "F1"))),
    )  # fmt: skip
    return Table.from_columns(
        "distill_models",
        "Table II: teacher, student alone, distilled, distilled + pruned (test)",
        columns,
        keys,
        (
            "precision / recall / F1 of the positive class (pneumonia); distilled_pq is ours "
            "(distillation with P->Q after every step), the study has no such row",
        ),
    )


def prune_table(rows: dict[str, Any], details: dict[str, Any]) -> Table:
    sweep = details.get("prune_sweep") or {}
    chosen = sweep.get("chosen_a")
    split = sweep.get("choose_on", "val")
    C = Column
    columns = (
        C("a", "a", lambda c: c["a"], fmt=lambda a: num(a, "g")),
        C(f"{split} accuracy %", "accuracy", lambda c: pct_value(c["accuracy"]), show=lambda c: pct(c["accuracy"])),
        C("% pruned", "pruned_pct", lambda c: round(100 * (1 - c["density"]), 4), show=lambda c: num(100 * (1 - c["density"]))),
        C("", "chosen", lambda c: c["a"] == chosen, fmt=lambda x: "chosen" if x else ""),
    )  # fmt: skip
    return Table.from_columns(
        "distill_prune",
        f"Table III: pruning the distilled student at threshold std / a ({split} accuracy)",
        columns,
        sweep.get("candidates", []),
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
    pq = details.get("pq") or {}
    chosen = pq.get("chosen")
    teacher = rows["teacher"]["bytes"]

    def comp(key: str) -> Callable[[str], Any]:
        return lambda k: (rows[k].get("compression") or {}).get(key)

    C = Column
    columns = (
        C("candidate", "candidate", lambda k: k, show=lambda k: k.split("/", 1)[1]),
        C("alpha", "alpha", comp("alpha"), fmt=lambda a: num(a, "g")),
        C("bits", "bits", comp("bits"), fmt=lambda b: str("-" if b is None else b)),
        C("val acc %", "val_accuracy", lambda k: pct_value(rows[k].get("val_accuracy")), show=lambda k: pct(rows[k].get("val_accuracy"))),
        C("test acc %", "accuracy", lambda k: pct_value(rows[k]["accuracy"]), show=lambda k: pct(rows[k]["accuracy"])),
        C("F1", "f1", lambda k: rows[k]["f1"], fmt=lambda f: num(f, ".3f")),
        C("density %", "density", lambda k: rows[k].get("density"), fmt=pct),
        C("bytes", "bytes", lambda k: rows[k]["bytes"], fmt=lambda b: f"{b:,}"),
        C("vs teacher", None, show=lambda k: f"{teacher / rows[k]['bytes']:,.0f}x"),
        C("", "chosen", lambda k: k == chosen, fmt=lambda x: "chosen" if x else ""),
    )  # fmt: skip
    return Table.from_columns(
        "distill_pq",
        "Ours: distillation under P->Q after every step (test accuracy; chosen on "
        f"{pq.get('choose_on', 'val')})",
        columns,
        [k for k in rows if k.startswith("distilled_pq/")],
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
