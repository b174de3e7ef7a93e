"""The `pqcompress` entry point stays light: the serving image has no torch, numba or rich."""

from __future__ import annotations

import subprocess
import sys


def test_building_the_parser_imports_no_heavy_module():
    code = (
        "import sys\n"
        "from pqcompress.cli.main import build_parser\n"
        "build_parser().parse_args(['serve', 'model.pqz'])\n"
        "print(','.join(m for m in ('torch', 'numba', 'rich', 'sklearn') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
