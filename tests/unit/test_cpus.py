"""The CPU budget: cgroup v2/v1 quota files, real affinity masks (taskset) and a real cgroup."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from pqcompress.cpus import THREADS_ENV, cgroup_quota, cpu_budget, threads_for

V2_MOUNT = "30 25 0:26 / {mount} rw,nosuid - cgroup2 cgroup2 rw\n"
V1_MOUNT = "31 25 0:27 {root} {mount} rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"


def test_cgroup_v2_quota_is_the_tightest_over_the_ancestors(tmp_path):
    pod = tmp_path / "kubepods" / "pod1"
    ctr = pod / "ctr"
    ctr.mkdir(parents=True)
    (tmp_path / "kubepods" / "cpu.max").write_text("max 100000\n")
    (pod / "cpu.max").write_text("150000 100000\n")  # the pod: 1.5 CPUs
    (ctr / "cpu.max").write_text("max 100000\n")
    quota, where = cgroup_quota("0::/kubepods/pod1/ctr\n", V2_MOUNT.format(mount=tmp_path))
    assert quota == 1.5 and where == str(pod / "cpu.max")
    (ctr / "cpu.max").write_text("10000 100000\n")  # 100 millicores
    quota, where = cgroup_quota("0::/kubepods/pod1/ctr\n", V2_MOUNT.format(mount=tmp_path))
    assert quota == pytest.approx(0.1) and where == str(ctr / "cpu.max")


def test_cgroup_v1_quota_with_a_mounted_subtree(tmp_path):
    # in a container the cpu hierarchy's own cgroup is mounted at the mount point
    (tmp_path / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu.cfs_period_us").write_text("100000\n")
    mountinfo = V1_MOUNT.format(root="/docker/abc", mount=tmp_path)
    quota, where = cgroup_quota("3:cpu,cpuacct:/docker/abc\n", mountinfo)
    assert quota == 0.5 and where == str(tmp_path / "cpu.cfs_quota_us")
    (tmp_path / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert cgroup_quota("3:cpu,cpuacct:/docker/abc\n", mountinfo) == (None, None)


@pytest.mark.parametrize("text", ["", "garbage", "max", "0 100000", "x y"])
def test_unreadable_or_unlimited_cpu_max_means_no_quota(tmp_path, text):
    (tmp_path / "cpu.max").write_text(text)
    assert cgroup_quota("0::/\n", V2_MOUNT.format(mount=tmp_path)) == (None, None)


def test_env_overrides_and_explicit_requests_win():
    assert cpu_budget({THREADS_ENV: "3"}).threads == 3
    assert cpu_budget({THREADS_ENV: "3"}).source == "env"
    assert cpu_budget({THREADS_ENV: "zero"}).source in ("affinity", "quota")
    assert threads_for(5) == 5


CHILD = (
    "import json, torch\n"
    "from pqcompress.cpus import cpu_budget\n"
    "from pqcompress.train.device import apply_threads\n"
    "n = apply_threads(None)\n"
    "import numba\n"
    "from pqcompress.train.device import size_numba\n"
    "size_numba(n)\n"
    "print(json.dumps({'budget': cpu_budget().to_dict(), 'torch': torch.get_num_threads(),"
    " 'numba': numba.get_num_threads()}))\n"
)


def _child(prefix: list[str]) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", THREADS_ENV)}
    env.pop("NUMBA_NUM_THREADS", None)
    out = subprocess.run(
        [*prefix, sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(shutil.which("taskset") is None, reason="no taskset (util-linux)")
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs to restrict")
def test_a_real_affinity_mask_sizes_torch_and_numba():
    cpu = min(os.sched_getaffinity(0))
    got = _child(["taskset", "-c", str(cpu)])
    assert got["budget"]["affinity"] == 1 and got["budget"]["threads"] == 1
    assert got["torch"] == 1 and got["numba"] == 1
    free = _child([])
    assert free["budget"]["affinity"] == len(os.sched_getaffinity(0))
    assert free["torch"] == free["numba"] == free["budget"]["threads"]


def _writable_cgroup() -> tuple[Path, str] | None:
    """A fresh child cgroup with CPU quota files this test may write (v2 or v1), or None."""
    candidates = [(Path("/sys/fs/cgroup"), "v2"), (Path("/sys/fs/cgroup/cpu"), "v1")]
    for base, kind in candidates:
        marker = base / ("cpu.max" if kind == "v2" else "cpu.cfs_quota_us")
        if kind == "v2" and not (base / "cgroup.controllers").is_file():
            continue
        if kind == "v1" and not marker.is_file():
            continue
        path = base / f"pqc-test-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            if kind == "v2":
                (path / "cpu.max").write_text("50000 100000\n")
            else:
                (path / "cpu.cfs_quota_us").write_text("50000\n")
            return path, kind
        except OSError:
            if path.exists():
                path.rmdir()
    return None


def test_a_real_cgroup_quota_sizes_torch_and_numba():
    made = _writable_cgroup()
    if made is None:
        pytest.skip("no writable cgroup with a CPU controller here (not root, or no cgroupfs)")
    path, _ = made
    try:
        enter = f'echo $$ > {path}/cgroup.procs && exec "$@"'
        got = _child(["sh", "-c", enter, "sh"])
    finally:
        path.rmdir()
    assert got["budget"]["quota"] == 0.5 and got["budget"]["source"] == "quota"
    assert got["budget"]["quota_source"].startswith(str(path))
    assert got["torch"] == 1 and got["numba"] == 1


def test_cpu_model_names_the_machine():
    from pqcompress.cpus import cpu_model

    name = cpu_model()
    assert isinstance(name, str) and name and "\n" not in name


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu sse4_2 avx fma avx2", "AMD EPYC, AVX2"),
        ("avx2 avx512f avx512bw", "AMD EPYC, AVX512"),
        ("avx2 avx512f avx512_bf16", "AMD EPYC, AVX512-BF16"),
        ("fpu sse2", "AMD EPYC"),
    ],
)
def test_cpu_model_says_the_widest_instruction_set(flags, expected):
    """Two machines both named "AMD EPYC" trained 4x apart (one had AVX512-BF16): the name a
    measurement records carries the instruction set."""
    from pqcompress.cpus import cpu_model

    info = f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n"
    assert cpu_model(info) == expected
