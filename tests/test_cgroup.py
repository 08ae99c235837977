"""The memory cgroup layer: real cgroups as root (v1 on this project's CI machine, v2 where
the memory controller is there), and v2's file protocol on a directory tree with its layout
where the machine has no v2 memory controller."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import need

from footprint.errors import EnvironmentUnavailable
from footprint.measure.cgroup import CGROUP_ROOT, CgroupV2, open_cgroup

pytestmark = pytest.mark.slow


def _cgroups() -> set[str]:
    found = set()
    for hierarchy in (
        CGROUP_ROOT,
        CGROUP_ROOT / "memory",
        CGROUP_ROOT / "pids",
        CGROUP_ROOT / "unified",
    ):
        if hierarchy.is_dir():
            found |= {f"{hierarchy}/{d}" for d in os.listdir(hierarchy) if "footprint" in d}
    return found


def _spawn_in(cg, code: str) -> subprocess.Popen:  # noqa: ANN001
    return subprocess.Popen([sys.executable, "-c", code], preexec_fn=lambda: cg.add(os.getpid()))


@pytest.fixture
def root_cgroups():
    need(os.geteuid() == 0, "creating cgroups needs root (or a delegated subtree)")
    before = _cgroups()
    yield
    assert _cgroups() == before, "a cgroup was left behind"


def test_peak_and_stats(root_cgroups) -> None:
    with open_cgroup() as cg:
        cg.set_limit(256 << 20)
        p = _spawn_in(cg, "x = bytearray(64 << 20); x[::4096] = b'1' * len(x[::4096])")
        assert p.wait() == 0
        assert cg.peak() >= 64 << 20
        assert cg.oom_kills() == 0


def test_oom_is_seen(root_cgroups) -> None:
    with open_cgroup() as cg:
        cg.set_limit(48 << 20)
        p = _spawn_in(cg, "x = bytearray(200 << 20)")
        assert p.wait() == -9
        assert cg.oom_kills() == 1  # the one process, once
        assert cg.peak() <= 48 << 20


@pytest.mark.parametrize("ending", [RuntimeError, KeyboardInterrupt])
def test_nothing_left_after_an_exception(root_cgroups, ending: type[BaseException]) -> None:
    with pytest.raises(ending), open_cgroup() as cg:
        cg.set_limit(128 << 20)
        p = _spawn_in(cg, "import os, time\nfor _ in range(3): os.fork()\ntime.sleep(60)")
        for _ in range(100):
            if len(cg.pids()) >= 8:
                break
            os.sched_yield()
        raise ending()
    assert p.wait(5) == -9
    assert not any(Path(f"/proc/{pid}").exists() for pid in cg.pids())


def test_v2_protocol_on_a_tree_with_its_layout(tmp_path) -> None:
    """This machine's memory controller is on v1: v2's files are exercised on a copy of their
    layout (the kernel's own files are replaced by plain ones)."""
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (tmp_path / "cgroup.subtree_control").write_text("")
    cg = open_cgroup(root=tmp_path)
    assert isinstance(cg, CgroupV2) and cg.path.parent == tmp_path
    assert (
        "+memory" in (tmp_path / "cgroup.subtree_control").read_text()
        or "+pids" in (tmp_path / "cgroup.subtree_control").read_text()
    )
    cg.set_limit(256 << 20)
    assert (cg.path / "memory.max").read_text() == str(256 << 20)
    (cg.path / "memory.peak").write_text("123456789\n")
    (cg.path / "memory.current").write_text("1000\n")
    (cg.path / "memory.stat").write_text("anon 1000\nfile 5000\nkernel 300\nshmem 4000\n")
    (cg.path / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    (cg.path / "cgroup.procs").write_text("")
    assert cg.peak() == 123456789
    assert cg.stats().anon_bytes == 1000 and cg.stats().shmem_bytes == 4000
    assert cg.stats().kernel_bytes == 300
    assert cg.oom_kills() == 1
    for f in cg.path.iterdir():
        f.unlink()
    cg.destroy()
    assert not cg.path.exists()


def test_no_controller_says_what_would_work(tmp_path) -> None:
    with pytest.raises(EnvironmentUnavailable, match="memory"):
        open_cgroup(root=tmp_path)
