"""index.html in headless Chromium: every embedded plot loads (naturalWidth > 0)."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "report"))
from report_support import grid_rows, run_row, write_store

from pqcompress.report import ReportOptions, build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed"),
]

# Loads index.html same-origin in an iframe, waits for every <img>, writes their widths.
CHECKER = """<!DOCTYPE html><html><body><pre id="result">pending</pre>
<iframe id="f" src="index.html" style="width:1200px;height:900px"></iframe>
<script>
const f = document.getElementById("f");
f.addEventListener("load", () => {
  const imgs = Array.from(f.contentDocument.images);
  const done = imgs.map(i => i.complete ? Promise.resolve()
    : new Promise(r => { i.addEventListener("load", r); i.addEventListener("error", r); }));
  Promise.all(done).then(() => {
    document.getElementById("result").textContent =
      "RESULT:" + JSON.stringify(imgs.map(i => i.naturalWidth)) + ":END";
  });
});
</script></body></html>
"""


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.requires("matplotlib")  # the plots
def test_every_image_of_index_html_loads_in_chromium(tmp_path: Path) -> None:
    rows = grid_rows()
    rows.append(run_row(len(rows), alpha=0.25, bits=8, status="failed", acc=None, error="x"))
    res = build_report(write_store(tmp_path / "r.db", rows), tmp_path / "report", ReportOptions())
    assert len(res.plots) >= 6  # no run dirs: the weight histogram is left out
    site = tmp_path / "site"
    shutil.copytree(res.out_dir, site)
    (site / "check.html").write_text(CHECKER, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/check.html"
        proc = subprocess.run(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r"RESULT:(\[.*?\]):END", proc.stdout)
    assert found, f"no result from chromium (rc {proc.returncode}): {proc.stderr[-2000:]}"
    widths = json.loads(found.group(1))
    assert len(widths) == len(res.plots)
    assert all(w > 0 for w in widths), widths
