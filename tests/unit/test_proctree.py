"""proctree: a real child process is found under its parent, with its CPU and memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from pqcompress import proctree

pytestmark = pytest.mark.skipif(not proctree.available(), reason="needs Linux /proc")


def test_tree_holds_a_real_child_and_sums_its_usage():
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; x = bytearray(64 << 20); sys.stdin.read()"],
        stdin=subprocess.PIPE,
    )
    try:
        rss = 0
        for _ in range(200):  # until the child has touched its 64 MiB (bounded)
            rss = proctree.rss_bytes(child.pid) or 0
            if rss > 60 << 20:
                break
            time.sleep(0.02)
        assert rss > 60 << 20
        tree = proctree.process_tree(os.getpid())
        assert tree[0] == os.getpid() and child.pid in tree
        cpu, rss = proctree.tree_usage(os.getpid())
        assert rss >= (proctree.rss_bytes(os.getpid()) or 0) + (60 << 20)
        assert cpu >= (proctree.cpu_seconds(os.getpid()) or 0.0)
        assert proctree.peak_rss_bytes(child.pid) >= 60 << 20
    finally:
        child.stdin.close()
        child.wait(timeout=30)
    assert child.pid not in proctree.process_tree(os.getpid())
    assert proctree.tree_usage(child.pid) is None and proctree.cpu_seconds(child.pid) is None


def test_tree_peak_rss_is_at_least_the_resident_size_now():
    import os

    from pqcompress import proctree

    if not proctree.available():
        pytest.skip("needs /proc")
    peak = proctree.tree_peak_rss(os.getpid())
    now = proctree.rss_bytes(os.getpid())
    assert peak is not None and now is not None and peak >= now > 0
