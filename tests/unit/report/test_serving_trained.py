"""The serving report's Tables II-IV read every sweep of the store: the study's variants and
channel-pruned ones trained beside them, each row saying how it was pruned."""

from __future__ import annotations

import json

from report_support import run_row, write_store

from pqcompress.report.serving import trained_table


def test_trained_table_holds_every_sweep_and_names_channel_points(tmp_path) -> None:
    element = run_row(0, alpha=1.25, bits=8, sweep="variants", acc=0.806)
    channel = run_row(1, alpha=0.5, bits=8, sweep="channels", acc=0.794)
    cfg = json.loads(channel["config"])
    cfg["compression"].update(granularity="channel", target_flops=0.25)
    channel["config"] = json.dumps(cfg)
    store = write_store(tmp_path / "r.db", [element, channel])
    table = trained_table(store, {})
    assert table is not None
    assert sorted(r["pruned"] for r in table.records) == ["channels, 25% MACs", "weights"]
    assert "channels" in table.title and "variants" in table.title
    assert {round(r["accuracy_pct"], 1) for r in table.records} == {80.6, 79.4}
