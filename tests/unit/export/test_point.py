"""run_point: train a config, export its best epoch, measure the file; a rerun picks the
finished run up without training, and an export that fails is one PointExportError."""

from __future__ import annotations

import pytest

from pqcompress.config import CompressionConfig, ExperimentConfig, TrainConfig
from pqcompress.export.point import PointExportError, run_point


def _config() -> ExperimentConfig:
    return ExperimentConfig(
        model="cnn5",
        model_args={"width": 0.25},
        dataset="digits",
        train=TrainConfig(epochs=2, batch_size=32, lr=0.05, max_steps_per_epoch=2, threads=1),
        compression=CompressionConfig(alpha=0.5, bits=4),
    )


def test_a_point_is_trained_exported_measured_and_then_picked_up(tmp_path) -> None:
    first = run_point(_config(), tmp_path / "p")
    assert not first.picked_up and first.result["status"] == "completed"
    assert first.pqz == tmp_path / "p" / "model.pqz" and first.pqz.is_file()
    assert first.pqz_bytes == first.pqz.stat().st_size
    assert first.float32_bytes is not None and first.float32_bytes > first.pqz_bytes
    assert [row["epoch"] for row in first.result["history"]] == [1, 2]
    stamp = first.pqz.stat().st_mtime_ns
    again = run_point(_config(), tmp_path / "p")
    assert again.picked_up and again.pqz_bytes == first.pqz_bytes
    assert again.pqz.stat().st_mtime_ns == stamp  # neither trained nor exported again
    assert [row["epoch"] for row in again.result["history"]] == [1, 2]


def test_an_export_that_fails_is_one_error_and_keeps_the_run(tmp_path) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "model.pqz").mkdir()  # the file's place is taken: the export fails
    with pytest.raises(PointExportError, match=r"export to \.pqz failed"):
        run_point(_config(), tmp_path / "p")
    assert (tmp_path / "p" / "best.pt").is_file()
    unexported = run_point(_config(), tmp_path / "p", export=False)
    assert unexported.picked_up and unexported.pqz is None


def test_a_file_is_exported_again_only_when_asked_for_with_other_settings(tmp_path) -> None:
    """``export_best`` reuses a file newer than ``best.pt`` written with the same settings,
    and one from before settings were recorded; other settings write it again."""
    import os

    import pqcompress as pqc
    from pqcompress.codec.run_export import export_best

    point = run_point(_config(), tmp_path / "p", onnx="none")
    assert point.pqz is not None
    assert pqc.codec.read(point.pqz)[0]["metadata"]["export"]["onnx"] == "none"
    stamp = point.pqz.stat().st_mtime_ns
    export_best(tmp_path / "p", point.pqz, onnx="none")
    assert point.pqz.stat().st_mtime_ns == stamp
    old = tmp_path / "p" / "old.pqz"  # a file of an earlier version: no metadata.export
    model = pqc.codec.load(point.pqz)
    pqc.save(model, old, metadata={"source": "best.pt"})
    os.utime(old, ns=(stamp + 10**9, stamp + 10**9))
    export_best(tmp_path / "p", old, onnx="auto", float_dtype="float16")
    assert "export" not in pqc.codec.read(old)[0]["metadata"]  # reused, as before
    export_best(tmp_path / "p", point.pqz, onnx="none", float_dtype="float16")
    assert point.pqz.stat().st_mtime_ns != stamp and pqc.codec.read(point.pqz)[0]["lossy"]
