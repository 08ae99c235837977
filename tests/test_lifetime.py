"""Nothing of a run outlives footprint: children tied to its life, and what a killed run left
removed by the next one — reap_stale() on a temporary root and on the real cgroup
filesystem, then footprint itself SIGKILLed at several moments of measure, boot and calibrate."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from conftest import SAMPLES, need, need_tool

from footprint import lifetime
from footprint.cli import cli
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.measure.cgroup import CGROUP_ROOT

OLD = time.time() - 3600  # an mtime before any process of the test started


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _holder(root: Path) -> tuple[subprocess.Popen[str], Path]:
    """Another process that made and holds a temporary directory in `root`."""
    code = (
        "import sys, time\nfrom footprint import lifetime\n"
        f"with lifetime.temp_dir('boot', {str(root)!r}) as d:\n"
        "    print(d, flush=True)\n    time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    return p, Path(p.stdout.readline().strip())


def _reap(root: Path) -> lifetime.Reaped:
    return lifetime.reap_stale(root, cgroup_root=root / "no-cgroups")


def test_temp_dir_is_named_locked_and_removed(tmp_path: Path) -> None:
    with lifetime.temp_dir("measure", str(tmp_path)) as d:
        name = Path(d).name
        assert name.startswith(f"footprint-measure-{os.getpid()}-")
        assert len(name.split("-")[-1]) == 8
        assert _reap(tmp_path) == lifetime.Reaped()  # locked: kept, even if it looks reused
        os.utime(d, (OLD, OLD))
        assert _reap(tmp_path) == lifetime.Reaped()
    assert list(tmp_path.iterdir()) == []


def test_a_live_run_is_kept_and_a_killed_one_removed(tmp_path: Path) -> None:
    p, made = _holder(tmp_path)
    try:
        os.utime(made, (OLD, OLD))
        assert _reap(tmp_path) == lifetime.Reaped() and made.is_dir()
    finally:
        p.kill()
        p.wait()
    (made / "console").write_text("left by the killed run\n")
    r = _reap(tmp_path)
    assert r == lifetime.Reaped((lifetime.Leftover("temporary directory", made, p.pid),))
    assert not made.exists()
    assert lifetime.describe(r) == (
        f"removed 1 temporary directory left by a killed run (pid {p.pid})"
    )


def test_a_reused_pid_is_not_the_run(tmp_path: Path) -> None:
    """The pid in the name is alive and nobody holds the lock: removed where that process
    started after the entry was last changed (it has the pid of a run now gone), kept where
    it may have made it (a run between making a directory and locking it)."""
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        young = tmp_path / f"footprint-kvm-{sleeper.pid}-abcdefgh"
        old = tmp_path / f"footprint-boot-{sleeper.pid}-abcdefgh"
        young.mkdir()
        old.mkdir()
        os.utime(old, (OLD, OLD))
        r = _reap(tmp_path)
        assert r.removed == (lifetime.Leftover("temporary directory", old, sleeper.pid),)
        assert young.is_dir() and not old.exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_what_is_not_footprints_is_kept(tmp_path: Path) -> None:
    dead = _dead_pid()
    foreign = [
        f"footprint-measure-{dead}",  # no random part
        f"footprint-measure-{dead}-abcdefg",  # too short
        f"footprint-measure-{dead}-ABCDEFGH",
        f"footprint-other-{dead}-abcdefgh",
        f"footprint-measure-0{dead}-abcdefgh",
        f"xfootprint-measure-{dead}-abcdefgh",
        "footprint-measure-abcdefgh",  # the names before pids were in them
        f"footprint-{dead}-abcdef",  # a cgroup's name, in the temp root
    ]
    for name in foreign:
        (tmp_path / name).mkdir()
    (tmp_path / f"footprint-boot-{dead}-filefile").write_text("a file, not a directory")
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / "data").write_text("the user's")
    (tmp_path / f"footprint-boot-{dead}-linklink").symlink_to(target)
    if os.geteuid() == 0:
        others = tmp_path / f"footprint-boot-{dead}-otheruid"
        others.mkdir()
        os.chown(others, 12345, 12345)  # another user's
    before = sorted(os.listdir(tmp_path))
    for name in before:
        os.utime(tmp_path / name, (OLD, OLD), follow_symlinks=False)
    assert _reap(tmp_path) == lifetime.Reaped()
    assert sorted(os.listdir(tmp_path)) == before
    assert (target / "data").read_text() == "the user's"


def test_a_mount_inside_is_never_crossed(tmp_path: Path) -> None:
    need(os.geteuid() == 0, "mounting needs root")
    stale = tmp_path / f"footprint-measure-{_dead_pid()}-mountmnt"
    (stale / "root").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(stale / "root")], check=True)
    try:
        (stale / "root" / "data").write_text("on another filesystem")
        r = _reap(tmp_path)
        assert r.removed == () and [(x.path, why) for x, why in r.failed] == [
            (stale, f"something is mounted in {stale}")
        ]
        assert (stale / "root" / "data").read_text() == "on another filesystem"
        assert lifetime.describe(r) == f"could not remove {stale} (something is mounted in {stale})"
    finally:
        subprocess.run(["umount", str(stale / "root")], check=True)
    assert _reap(tmp_path).removed[0].path == stale and not stale.exists()


def _hierarchies() -> dict[str, Path]:
    found = {
        name: CGROUP_ROOT / name
        for name in ("memory", "pids", "unified")
        if (CGROUP_ROOT / name / "cgroup.procs").exists()
    }
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure v2
        found["unified"] = CGROUP_ROOT
    return found


def test_stale_cgroups_v1_and_v2_are_removed_with_what_runs_in_them(tmp_path: Path) -> None:
    need(os.geteuid() == 0, "creating cgroups needs root")
    h = _hierarchies()
    need("unified" in h and ("memory" in h or "pids" in h), "needs a v1 and a v2 hierarchy")
    v1 = [h[n] for n in ("memory", "pids") if n in h]
    lifetime.reap_stale(tmp_path)  # what earlier killed runs left, so that ours is all
    code = (
        "import time\nfrom footprint.measure.cgroup import open_cgroup\n"
        "with open_cgroup() as cg:\n    print(cg.path, flush=True)\n    time.sleep(60)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    live = Path(holder.stdout.readline().strip())
    live_dirs = [d / live.name for d in h.values() if (d / live.name).is_dir()]
    for d in live_dirs:  # as if its pid had been reused since: its lock alone keeps it
        os.utime(d, (OLD, OLD))
    dead = _dead_pid()
    v1_dirs = [d / f"footprint-{dead}-0000a1" for d in v1]
    v2_dir = h["unified"] / f"footprint-{dead}-0000a2"
    for d in [*v1_dirs, v2_dir]:
        d.mkdir()
    sleepers = [subprocess.Popen(["sleep", "60"]) for _ in range(2)]
    for d in v1_dirs:
        (d / "cgroup.procs").write_text(str(sleepers[0].pid))
    (v2_dir / "cgroup.procs").write_text(str(sleepers[1].pid))
    try:
        r = lifetime.reap_stale(tmp_path)
        assert all(d.is_dir() for d in live_dirs) and live in live_dirs
    finally:
        holder.kill()
        holder.wait()
    assert sorted(r.removed, key=lambda x: str(x.path)) == sorted(
        [lifetime.Leftover("cgroup", v1_dirs[0], dead), lifetime.Leftover("cgroup", v2_dir, dead)],
        key=lambda x: str(x.path),
    )
    assert r.failed == ()
    assert not any(d.exists() for d in [*v1_dirs, v2_dir])
    assert [s.wait(5) for s in sleepers] == [-signal.SIGKILL] * 2
    assert lifetime.describe(r) == f"removed 2 cgroups left by a killed run (pid {dead})"
    killed = lifetime.reap_stale(tmp_path)  # the holder, killed: its cgroup is stale now
    assert killed == lifetime.Reaped((lifetime.Leftover("cgroup", live, holder.pid),))
    assert not any(d.exists() for d in live_dirs)


def test_describe_counts_and_names_the_runs() -> None:
    p = Path("/x")
    r = lifetime.Reaped(
        (
            lifetime.Leftover("cgroup", p, 12),
            lifetime.Leftover("temporary directory", p, 12),
            lifetime.Leftover("temporary directory", p, 7),
        ),
        ((lifetime.Leftover("temporary directory", Path("/y"), 7), "Permission denied"),),
    )
    assert lifetime.describe(r) == (
        "removed 1 cgroup and 2 temporary directories left by killed runs (pids 7, 12); "
        "could not remove /y (Permission denied)"
    )
    assert lifetime.describe(lifetime.Reaped()) == ""


@pytest.mark.parametrize(
    "args",
    [
        ["measure", "IMAGE"],
        ["boot", "IMAGE", "--kernel", "/"],
        ["calibrate", "IMAGE", "--kernel", "/"],
    ],
)
def test_the_commands_that_make_them_reap_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """The notice is one line on stderr, whatever the command does next (here: refuses)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # what TMPDIR sets, once read
    garbage = tmp_path / "garbage.img"
    garbage.write_bytes(b"not an image at all")
    stale = tmp_path / f"footprint-boot-{_dead_pid()}-abcdefgh"
    stale.mkdir()
    pid = stale.name.split("-")[2]
    args = [str(garbage) if a == "IMAGE" else a for a in args]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code in (2, 3, 4), r.output
    notice = f"footprint: removed 1 temporary directory left by a killed run (pid {pid})"
    assert r.stderr.splitlines()[0] == notice
    assert not stale.exists()


def test_inspect_does_not_reap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stale = tmp_path / f"footprint-boot-{_dead_pid()}-abcdefgh"
    stale.mkdir()
    r = CliRunner().invoke(cli, ["inspect", "/nonexistent"])
    assert "removed" not in r.stderr and stale.is_dir()


# -- children die with footprint ----------------------------------------------------------
def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_tied_command_dies_with_its_parent() -> None:
    code = (
        "import subprocess, time\nfrom footprint import lifetime\n"
        "p = subprocess.Popen(lifetime.tied(['/bin/sleep', '60']))\n"
        "print(p.pid, flush=True)\ntime.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    deadline = time.monotonic() + 10
    while psutil.Process(child).name() != "sleep":  # the wrapper has exec'd it
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert not _gone_within(child, 0.5)
    parent.kill()
    parent.wait()
    assert _gone_within(child, 5)


def test_a_tied_command_whose_parent_is_gone_does_not_run(tmp_path: Path) -> None:
    """The parent died before the wrapper set the signal: it exits instead of running."""
    cmd = lifetime.tied(["/bin/touch", str(tmp_path / "ran")])
    at = cmd.index(str(os.getpid()))
    assert subprocess.run([*cmd[:at], str(_dead_pid()), *cmd[at + 1 :]]).returncode == 137
    assert not (tmp_path / "ran").exists()
    assert subprocess.run(cmd).returncode == 0 and (tmp_path / "ran").exists()


def test_die_with_a_parent_already_gone_exits_at_once() -> None:
    dead = _dead_pid()
    pid = os.fork()
    if pid == 0:  # the child
        lifetime.die_with(dead)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 128 + signal.SIGKILL


# -- footprint SIGKILLed: nothing of the run stays alive, and the next run cleans up -----------
BUSYBOX = str(SAMPLES / "busybox-gzip.img")
MARKER = "footprint-sample: init reached"
_OURS = re.compile(r"footprint-(?:measure|boot|kdump|kvm|ablate)-(\d+)-")


class _Run:
    """`footprint ARGS` in a subprocess, its processes found by the mark in their environment
    (footprint's own, the sandbox's helpers, QEMU), by its cgroups (the image's processes) and
    by its temporary directory in their command line (QEMU)."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.mark = os.urandom(8).hex()
        env = dict(os.environ, FOOTPRINT_QEMU_ACCEL="tcg", FOOTPRINT_TEST_RUN=self.mark)
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "footprint", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        self.pid = self.proc.pid

    def cgroups(self) -> list[Path]:
        return sorted(
            d
            for h in (CGROUP_ROOT, *(CGROUP_ROOT / n for n in ("memory", "pids", "unified")))
            for d in h.glob(f"footprint-{self.pid}-*")
        )

    def temp_dirs(self) -> list[Path]:
        return sorted(Path(tempfile.gettempdir()).glob(f"footprint-*-{self.pid}-*"))

    def processes(self) -> dict[int, str]:
        """pid -> name of every live process of the run (zombies are dead)."""
        found = {}
        in_cgroups = set()
        for cg in self.cgroups():
            with contextlib.suppress(OSError):
                in_cgroups |= {int(p) for p in (cg / "cgroup.procs").read_text().split()}
        for p in psutil.process_iter(["name", "cmdline", "environ", "status"]):
            if p.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            m = _OURS.search(" ".join(p.info["cmdline"] or []))
            if (
                p.pid in in_cgroups
                or (m and int(m.group(1)) == self.pid)
                or (p.info["environ"] or {}).get("FOOTPRINT_TEST_RUN") == self.mark
            ):
                found[p.pid] = p.info["name"]
        return found

    def qemus(self) -> list[int]:
        return [pid for pid, name in self.processes().items() if name.startswith("qemu-system")]

    def kill_when(self, ready: Callable[[], bool], seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not ready():
            assert self.proc.poll() is None, "footprint ended before the moment to kill it"
            assert time.monotonic() < deadline, "the moment to kill footprint never came"
            time.sleep(0.02)
        self.proc.kill()
        assert self.proc.wait() == -signal.SIGKILL

    def assert_nothing_alive(self, seconds: float = 5.0) -> None:
        deadline = time.monotonic() + seconds
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert self.processes() == {}


def _notice(cgroups: list[Path], temp_dirs: list[Path], pid: int) -> str:
    kinds = []
    for n, one, many in (
        (len({c.name for c in cgroups}), "cgroup", "cgroups"),
        (len(temp_dirs), "temporary directory", "temporary directories"),
    ):
        if n:
            kinds.append(f"{n} {one if n == 1 else many}")
    return f"footprint: removed {' and '.join(kinds)} left by a killed run (pid {pid})"


def _next_run_cleans_up(
    run: _Run, args: list[str], expected_exit: int, may_leave_nothing: bool = False
) -> None:
    """What the killed run left is there, and the next footprint command removes it."""
    cgroups, temp_dirs = run.cgroups(), run.temp_dirs()
    assert may_leave_nothing or temp_dirs or cgroups, "the killed run left nothing"
    r = subprocess.run(
        [sys.executable, "-m", "footprint", *args], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == expected_exit, r.stderr[-2000:]
    if temp_dirs or cgroups:
        assert r.stderr.splitlines()[0] == _notice(cgroups, temp_dirs, run.pid)
    else:  # killed after one trial's directory was removed, before the next one's was made
        assert f"(pid {run.pid})" not in r.stderr
    assert run.cgroups() == [] and run.temp_dirs() == []


@pytest.fixture
def killable(tmp_path: Path) -> Path:
    need(os.geteuid() == 0, "measure needs root; the cgroups too")
    lifetime.reap_stale()  # what earlier killed runs left: the notice then names ours alone
    return tmp_path / "stderr"


MANY = 200_000  # empty files: an unpack that lasts longer than the 5 s the test waits


def _many_files(tmp_path: Path) -> str:
    d, f = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o644
    entries = [newc_entry(".", d), newc_entry("many", d)]
    entries += [newc_entry(f"many/{i}", f) for i in range(MANY)]
    img = tmp_path / "many.img"
    img.write_bytes(b"".join(entries) + newc_trailer())
    return str(img)


@pytest.mark.slow
def test_measure_killed_while_unpacking(killable: Path, tmp_path: Path) -> None:
    run = _Run(["measure", _many_files(tmp_path), "--memory", "1G"], killable)

    def unpacking() -> bool:  # the unpacker, in the cgroup, has written some of the files
        for pid in run.processes():
            for tmp in run.temp_dirs():
                with contextlib.suppress(OSError):
                    if 100 < len(os.listdir(f"/proc/{pid}/root{tmp}/root/many")) < MANY // 2:
                        return True
        return False

    run.kill_when(unpacking, 60)
    run.assert_nothing_alive()
    _next_run_cleans_up(run, ["measure", str(SAMPLES / "bad" / "garbage.img")], 3)


@pytest.mark.slow
def test_measure_killed_while_init_runs(killable: Path) -> None:
    script = "/bin/sh -c 'sleep 1000 & sleep 1001 & wait'"
    run = _Run(["measure", BUSYBOX, "--run", script, "--timeout", "120"], killable)
    run.kill_when(lambda: list(run.processes().values()).count("sleep") == 2, 60)
    run.assert_nothing_alive()
    _next_run_cleans_up(run, ["measure", BUSYBOX, "--until", MARKER, "--memory", "64M"], 0)


def _kernel() -> str:
    need_tool("qemu-system-x86_64", "qemu-system-x86")
    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    return str(kernels[-1])


@pytest.mark.slow
@pytest.mark.integration
def test_boot_killed_while_qemu_runs(killable: Path) -> None:
    boot = ["boot", BUSYBOX, "--kernel", _kernel(), "--until", MARKER]
    run = _Run([*boot, "--timeout", "120"], killable)
    run.kill_when(lambda: bool(run.qemus()), 60)
    run.assert_nothing_alive()
    _next_run_cleans_up(run, boot, 0)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.parametrize("moment", ["during the second trial", "between trials"])
def test_calibrate_killed(killable: Path, moment: str) -> None:
    run = _Run(
        ["calibrate", BUSYBOX, "--kernel", _kernel(), "--until", MARKER, "--timeout", "30"],
        killable,
    )
    seen: set[int] = set()

    def ready() -> bool:
        now = run.qemus()
        seen.update(now)
        if moment == "between trials":
            return bool(seen) and not now
        return len(seen) >= 2

    run.kill_when(ready, 120)
    run.assert_nothing_alive()
    garbage = ["measure", str(SAMPLES / "bad" / "garbage.img")]
    _next_run_cleans_up(run, garbage, 3, may_leave_nothing=moment == "between trials")
