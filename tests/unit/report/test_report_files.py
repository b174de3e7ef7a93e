"""A whole report from a store with real run directories: files, plots, HTML, weights."""

from __future__ import annotations

import base64
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from report_support import rows_with_real_runs, run_row, write_store

from pqcompress.report import MissingDependencyError, ReportError, ReportOptions, build_report
from pqcompress.report.errors import PlotSkipped
from pqcompress.report.grid import build_grid, most_compressed
from pqcompress.report.settings import pareto_front
from pqcompress.report.store import read_sweep
from pqcompress.report.weights import layer_weights

TABLES = ("accuracy_density", "efficiency_score", "table_i_comparison", "points", "runs")
PLOTS = (
    "accuracy_vs_bits",
    "density_vs_bits",
    "efficiency_heatmap",
    "efficiency_vs_bits",
    "accuracy_per_epoch",
    "weight_histogram",
    "confusion_matrices",
    "size_vs_accuracy",
)


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.hrefs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        if a.get("href"):
            self.hrefs.append(a["href"] or "")


@pytest.fixture(scope="module")
def full_report(real_runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("full_report")
    store = write_store(root / "results.db", rows_with_real_runs(real_runs))
    return build_report(store, root / "report")


@pytest.mark.requires("matplotlib")  # the plots
@pytest.mark.slow
def test_every_table_and_plot_file_is_written(full_report) -> None:
    out = full_report.out_dir
    assert full_report.skipped == ()
    for name in TABLES:
        for ext in ("md", "csv", "json"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    assert sorted(full_report.plots) == sorted(PLOTS)
    for name in PLOTS:
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in (out / f"{name}.svg").read_bytes()[:2000]
    assert all(p.is_file() for p in full_report.files)


@pytest.mark.requires("matplotlib")  # the plots
@pytest.mark.slow
def test_rendering_again_gives_the_same_bytes(full_report, tmp_path: Path) -> None:
    """A report re-rendered from the same store is the same files to the byte: tables, and
    plots without a date or random SVG ids, so a committed report can be checked by diff."""
    again = build_report(full_report.out_dir.parent / "results.db", tmp_path / "again")
    first = {p.relative_to(full_report.out_dir): p.read_bytes() for p in full_report.files}
    second = {p.relative_to(again.out_dir): p.read_bytes() for p in again.files}
    assert first.keys() == second.keys() and len(first) > 20
    different = [str(k) for k in first if first[k] != second[k]]
    assert different == []


@pytest.mark.requires("matplotlib")  # the plots
@pytest.mark.slow
def test_html_embeds_every_plot_and_links_only_existing_files(full_report) -> None:
    text = full_report.index_html.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(text)
    assert len(refs.imgs) == len(PLOTS)
    pngs = {(full_report.out_dir / f"{n}.png").read_bytes() for n in PLOTS}
    for src in refs.imgs:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]) in pngs
    for href in refs.hrefs:
        if href.startswith("#"):
            assert f'id="{href[1:]}"' in text
        else:
            assert (full_report.out_dir / href).is_file(), href
    assert not {"script", "link", "iframe"} & refs.tags
    assert "http://" not in text and "https://" not in text
    for word in ("Sweep report: grid", "cnn5", "digits", "failed"):
        assert word in text


def test_weights_are_decoded_from_the_pqz_and_compared_with_latent_floats(
    real_runs: dict[str, Path], tmp_path: Path
) -> None:
    sweep = read_sweep(write_store(tmp_path / "r.db", rows_with_real_runs(real_runs)))
    grid = build_grid(sweep)
    small = most_compressed(sweep)
    assert small is not None and small.point_index == 17  # alpha .75, 4 bits: smallest RC
    lw = layer_weights(small, None, grid.baseline)
    assert lw.layer == "features.12.weight"  # the largest compressed tensor of student_cnn
    assert "latent" in lw.before_source
    assert len(np.unique(lw.after)) <= 2**4 + 1  # exact form: 0 and ±8 magnitudes at most
    assert (lw.after == 0).mean() > 0.2 and (lw.before == 0).mean() < 0.01
    with pytest.raises(ReportError, match=r"compressed tensors: features\.0\.weight"):
        layer_weights(small, "features.1.weight", grid.baseline)  # a BatchNorm weight
    chosen = layer_weights(small, "classifier.0.weight", grid.baseline)
    assert chosen.after.size == 10 * 28


def test_in_place_runs_compare_with_the_baseline_run(
    real_runs: dict[str, Path], tmp_path: Path
) -> None:
    sweep = read_sweep(write_store(tmp_path / "r.db", rows_with_real_runs(real_runs)))
    grid = build_grid(sweep)
    small = most_compressed(sweep)
    assert small is not None
    inplace = small.__class__(**{**small.__dict__, "run_dir": str(tmp_path / "gone")})
    lw = layer_weights(inplace, None, grid.baseline)
    assert "baseline" in lw.before_source
    with pytest.raises(PlotSkipped, match="no float weights"):
        layer_weights(inplace, None, None)


def test_a_missing_pqz_skips_the_histogram_with_a_note(tmp_path: Path) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, acc=0.9),
        run_row(1, alpha=0.5, bits=4, acc=0.8, pqz_path=str(tmp_path / "missing.pqz")),
    ]
    sweep = read_sweep(write_store(tmp_path / "r.db", rows))
    small = most_compressed(sweep)
    assert small is not None and small.point_index == 1
    with pytest.raises(PlotSkipped, match=r"no \.pqz file .*missing\.pqz"):
        layer_weights(small, None, build_grid(sweep).baseline)


@pytest.mark.requires("matplotlib")  # the plots
def test_a_store_with_nothing_finished_still_gives_tables_and_html(tmp_path: Path) -> None:
    rows = [
        run_row(0, alpha=0.0, bits=32, status="pending", acc=None),
        run_row(1, alpha=0.5, bits=4, status="failed", acc=None, error="OOM"),
    ]
    res = build_report(write_store(tmp_path / "r.db", rows), tmp_path / "rep")
    assert res.plots == {}
    assert len(res.skipped) == len(PLOTS)
    assert sorted(res.tables) == sorted(TABLES)
    assert "OOM" in (tmp_path / "rep" / "runs.md").read_text()


def test_missing_matplotlib_names_the_extra(
    grid_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MissingDependencyError, match=r"pqcompress\[report\]"):
        build_report(grid_store, tmp_path / "rep")
    assert not (tmp_path / "rep").exists()
    assert build_report(grid_store, tmp_path / "rep", ReportOptions(plots=False)).tables


def test_pareto_front_keeps_points_no_other_beats() -> None:
    pts = [(10, 0.5), (5, 0.6), (20, 0.9), (5, 0.4), (30, 0.8), (15, 0.9)]
    assert pareto_front(pts) == [1, 5]  # (5, .6) then (15, .9); (20, .9) is not better
