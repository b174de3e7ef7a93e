"""SearchStore: the search studies in the results store: one row per real evaluation, one per
iteration of an algorithm, one per study (tables ``search_*`` of ``results.schema``)."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from typing import Any

from pqcompress.results.db import Store


class SearchStore(Store):
    """Read and write the studies' rows; every write is its own committed transaction."""

    # ------------------------------------------------------------------ studies
    def study(self, study: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM search_studies WHERE study = ?", (study,)).fetchone()
        if row is None:
            return None
        return {"spec": json.loads(row["spec"]), "reference": json.loads(row["reference"])}

    def add_study(self, study: str, spec: Mapping[str, Any], reference: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO search_studies VALUES (?, ?, ?, ?)",
                (study, json.dumps(spec, sort_keys=True), json.dumps(reference), time.time()),
            )

    def studies(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT study FROM search_studies ORDER BY study")]

    # ------------------------------------------------------------------ evaluations
    def evaluations(self, study: str, algorithm: str, repeat: int) -> dict[str, dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM search_evals WHERE study = ? AND algorithm = ? AND repeat = ? ORDER BY seq",
            (study, algorithm, repeat),
        )
        return {r["key"]: _eval(r) for r in rows}

    def all_evaluations(self, study: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM search_evals WHERE study = ? ORDER BY algorithm, repeat, seq", (study,)
        )
        return [_eval(r) for r in rows]

    def add_evaluation(self, study: str, row: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO search_evals VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    study,
                    row["algorithm"],
                    row["repeat"],
                    row["key"],
                    row["seq"],
                    row["iteration"],
                    json.dumps(row["variables"], sort_keys=True),
                    json.dumps(row["objectives"]),
                    json.dumps(row["constraints"]),
                    int(bool(row["feasible"])),
                    float(row["wall_s"]),
                    time.time(),
                ),
            )

    # ------------------------------------------------------------------ finished runs
    def finished(self, study: str, algorithm: str, repeat: int) -> dict[str, Any] | None:
        row = self.db.execute(
            "SELECT * FROM search_runs WHERE study = ? AND algorithm = ? AND repeat = ?",
            (study, algorithm, repeat),
        ).fetchone()
        return dict(row) if row is not None else None

    def finish(self, study: str, algorithm: str, repeat: int, **values: float) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO search_runs VALUES (?,?,?,?,?,?,?)",
                (
                    study,
                    algorithm,
                    repeat,
                    int(values["evaluations"]),
                    float(values["hypervolume"]),
                    float(values["wall_s"]),
                    time.time(),
                ),
            )

    # ------------------------------------------------------------------ iterations
    def add_iteration(self, study: str, row: Mapping[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO search_iterations VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    study,
                    row["algorithm"],
                    row["repeat"],
                    row["iteration"],
                    row["evaluations"],
                    row["hypervolume"],
                    row.get("fit_s"),
                    row.get("optimize_s"),
                    json.dumps(row.get("picks")) if row.get("picks") is not None else None,
                ),
            )

    def iterations(self, study: str) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT * FROM search_iterations WHERE study = ? ORDER BY algorithm, repeat, iteration",
            (study,),
        )
        out = []
        for r in rows:
            d = dict(r)
            d["picks"] = json.loads(d["picks"]) if d["picks"] else None
            out.append(d)
        return out


def _eval(r: sqlite3.Row) -> dict[str, Any]:
    return {
        "algorithm": r["algorithm"],
        "repeat": r["repeat"],
        "key": r["key"],
        "seq": r["seq"],
        "iteration": r["iteration"],
        "variables": json.loads(r["variables"]),
        "objectives": json.loads(r["objectives"]),
        "constraints": json.loads(r["constraints"]),
        "feasible": bool(r["feasible"]),
        "wall_s": r["wall_s"],
    }
