"""The child side of a measured run: unpack the image into a tmpfs inside the memory cgroup,
then run its init as PID 1 of new user, mount, pid, ipc, uts and network namespaces, on the
image as its root (pivot_root, the old root detached).

What the image's code can reach (documented in the README): its own tmpfs root; /proc of its
own pid namespace, with /proc/cmdline replaced by ours; a read-only /sys (the host's devices
are visible there, not writable); /dev with null, zero, full, random, urandom, tty and a pty
as its console; a network namespace with only loopback. It is root inside a user namespace
whose ids map to unprivileged ids on the host (100000 + id), limited by the cgroup's memory
and pids limits. It cannot see the host's files, mounts, processes or network.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import struct
import termios
import traceback
from dataclasses import dataclass
from typing import BinaryIO

from footprint import lifetime
from footprint.measure import linux, messages
from footprint.measure.messages import Kind

ID_BASE = 100000  # host uid/gid of root inside the sandbox
ID_COUNT = 65536
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

# How the unpacking child (C1) ends, for the parent.
EXIT_UNPACK_FAILED = 90
EXIT_SETUP_FAILED = 91


@dataclass(frozen=True)
class SandboxSpec:
    image: str
    root: str  # an empty host directory the tmpfs is mounted on (in the child's namespace)
    cmdline_file: str  # host file with the kernel command line the run sees
    argv: tuple[str, ...]
    tmpfs_bytes: int  # the rootfs size cap (the kernel: none for ramfs, half the RAM for tmpfs)
    hostname: str = "kdump"


def write_id_maps(pid: int) -> None:
    """The parent maps the child's user namespace: root inside is ID_BASE outside."""
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write(f"0 {ID_BASE} {ID_COUNT}\n")


def _loopback_up() -> None:
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s, siocgifflags, req))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sh", b"lo", flags | iff_up))


def _bind_file(source: str, target: str, readonly: bool = False) -> None:
    if not os.path.exists(target):
        with open(target, "w"):
            pass
    linux.mount(source, target, None, linux.MS_BIND)
    if readonly:
        linux.mount(source, target, None, linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY)


def _prepare_root(spec: SandboxSpec, console: str) -> None:
    root = spec.root
    for d in ("proc", "sys", "dev", "run", "tmp"):
        path = os.path.join(root, d)
        if os.path.islink(path) or (os.path.exists(path) and not os.path.isdir(path)):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
    linux.mount("proc", f"{root}/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    _bind_file(spec.cmdline_file, f"{root}/proc/cmdline", readonly=True)
    with contextlib.suppress(OSError):  # a read-only /sys where allowed, else none
        linux.mount(
            "sysfs",
            f"{root}/sys",
            "sysfs",
            linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
        )
    linux.mount(
        "tmpfs", f"{root}/dev", "tmpfs", linux.MS_NOSUID | linux.MS_NOEXEC, "mode=0755,size=1m"
    )
    for name in DEVICES:
        _bind_file(f"/dev/{name}", f"{root}/dev/{name}")
    _bind_file(console, f"{root}/dev/console")
    os.makedirs(f"{root}/dev/pts", exist_ok=True)
    os.makedirs(f"{root}/dev/shm", exist_ok=True)
    os.chdir(root)
    os.makedirs(".oldroot", exist_ok=True)
    linux.pivot_root(".", ".oldroot")
    os.chdir("/")
    linux.umount2("/.oldroot", linux.MNT_DETACH)
    os.rmdir("/.oldroot")


def _attach_console() -> None:
    os.setsid()
    fd = os.open("/dev/console", os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)


def _lock_mounts() -> None:
    """Enter a second user and mount namespace: every mount prepared above becomes locked,
    so the image cannot uncover them, and (the kernel's mount_too_revealing rule) cannot mount
    a fresh /proc that would show the host's kernel command line instead of ours."""
    linux.unshare(linux.CLONE_NEWUSER | linux.CLONE_NEWNS)
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text + "\n")
        except OSError as e:
            raise OSError(e.errno, f"writing /proc/self/{name}: {e.strerror}") from None


def run_init(spec: SandboxSpec, console: str) -> None:
    """PID 1 of the new namespaces: finish the root, then become the image's init."""
    _prepare_root(spec, console)
    socket.sethostname(spec.hostname)  # uts and net belong to the outer user namespace
    with contextlib.suppress(OSError):
        _loopback_up()
    _lock_mounts()
    _attach_console()
    os.closerange(3, 1 << 16)
    env = {"HOME": "/", "TERM": "linux", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    os.execve(spec.argv[0], list(spec.argv), env)


def _wait_gate(gate_r: int) -> None:
    """Block until the parent has put this process into the cgroup."""
    if os.read(gate_r, 1) != messages.GO:
        os._exit(EXIT_SETUP_FAILED)


def _join(status_w: int, pid: int) -> None:
    os.write(status_w, messages.encode(Kind.JOIN, pid))


def child_main(
    spec: SandboxSpec,
    image: BinaryIO,
    console: str,
    ready_w: int,
    go_r: int,
    status_w: int,
    gate_r: int,
) -> int:
    """C1, outside the cgroup: namespaces and the tmpfs, then two children the parent puts
    in the cgroup: one unpacks the image and exits (so only the rootfs stays charged), the
    other becomes PID 1 of a new pid namespace and runs the image's init."""
    from footprint.errors import FootprintError
    from footprint.image.extract import extract

    footprint = os.getppid()  # still it: were it gone, go_r would read EOF below
    linux.unshare(
        linux.CLONE_NEWUSER
        | linux.CLONE_NEWNS
        | linux.CLONE_NEWIPC
        | linux.CLONE_NEWUTS
        | linux.CLONE_NEWNET
    )
    os.write(ready_w, messages.READY)
    if os.read(go_r, 1) != messages.GO:
        return EXIT_SETUP_FAILED
    os.setresgid(0, 0, 0)
    os.setgroups([0])
    os.setresuid(0, 0, 0)
    linux.set_dumpable()
    lifetime.die_with(footprint)  # after the uid change, which clears the setting
    c1 = os.getpid()
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("rootfs", spec.root, "tmpfs", 0, f"size={spec.tmpfs_bytes},mode=0755")

    unpacker = os.fork()
    if unpacker == 0:
        code = EXIT_UNPACK_FAILED
        try:
            lifetime.die_with(c1)
            _wait_gate(gate_r)
            result = extract(spec.image, spec.root, force=True, file=image)
            os.write(status_w, messages.encode(Kind.UNPACKED, result.bytes))
            code = 0
        except (FootprintError, OSError) as e:
            with contextlib.suppress(OSError):
                os.write(status_w, messages.encode(Kind.UNPACK_FAILED, e))
        finally:
            os._exit(code)
    _join(status_w, unpacker)
    _, status = os.waitpid(unpacker, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return EXIT_UNPACK_FAILED
    image.close()

    linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        try:
            lifetime.die_with(c1)  # and when PID 1 dies, the kernel kills the namespace
            _wait_gate(gate_r)
            run_init(spec, console)
        except BaseException:
            with contextlib.suppress(OSError):
                failure = messages.encode(Kind.SETUP_FAILED, traceback.format_exc(limit=2))
                os.write(status_w, failure)
            os._exit(EXIT_SETUP_FAILED)
    _join(status_w, pid)
    os.close(status_w)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) & 0xFF
