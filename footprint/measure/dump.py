"""The dump a capture saved on its root disk, read back from the trial's overlay after QEMU
has exited: the file exists, its header is one makedumpfile writes, its size is sane, and the
dmesg saved beside it holds the panic.

How the disk is read: e2fsprogs' debugfs reads an ext2/3/4 filesystem image as a file, with
no mount, so no root, loop device or NBD module is needed, and nothing can write to it (it
opens read-only unless told -w). debugfs cannot read qcow2, so `qemu-img convert` first
writes the overlay (with its backing disk) as a sparse raw file in the trial's temporary
directory, which costs the disk's allocated blocks only. A partition is read in place with
the `FILE?offset=N` name e2fsprogs' unix I/O manager takes.

Debian's kdump-tools writes /var/crash/<YYYYmmddHHMM>/dump.<stamp> (makedumpfile -c -d 31:
kdump-compressed; -F flattened for a remote target), first as dump-incomplete, renamed only
once makedumpfile succeeded, and dmesg.<stamp> beside it.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from footprint import lifetime
from footprint.measure.backend import DumpFile, DumpFormat
from footprint.measure.rootdisk import RootDisk, run_tool, tool
from footprint.units import MIB

CRASH_DIR = "/var/crash"
# Recognised by their first bytes, in this order (makedumpfile's headers; an ELF core).
HEADERS: tuple[tuple[bytes, DumpFormat], ...] = (
    (b"KDUMP   ", DumpFormat.KDUMP_COMPRESSED),  # struct disk_dump_header's signature
    (b"makedumpfile", DumpFormat.FLATTENED),  # struct makedumpfile_header's signature
    (b"\x7fELF", DumpFormat.ELF),  # an ELF core when e_type is ET_CORE
)
ET_CORE = 4
# kdump-tools' names until makedumpfile (or its fallback, cp /proc/vmcore) has finished
INCOMPLETE = ("dump-incomplete", "vmcore-incomplete")
MIN_DUMP_BYTES = 64 * 1024  # smaller than any header + bitmaps of a real machine's dump
SLACK_BYTES = 64 * MIB  # a dump is never larger than the crashed RAM and this
PANIC_WORDS = ("Kernel panic", "sysrq triggered crash")
KDUMP_DEFAULTS = "/etc/default/kdump-tools"
DPKG_INFO = "/var/lib/dpkg/info"  # <package>[:<arch>].list: the files each package ships
# Where the programs a process runs live (a daemon's helpers too: /lib/systemd/systemd-*).
PROGRAM_DIRS = re.compile(r"^(/usr)?(/s?bin|/lib/systemd|/libexec(/[^/]+)?|/lib/udev)$")
KDUMP_CONFIG = "/usr/sbin/kdump-config"
# kdump-tools' names for a finished dump: makedumpfile's, or a copy of /proc/vmcore (ELF)
# when makedumpfile failed.
DUMP_NAMES = ("dump.", "vmcore.")
APPEND_SET = re.compile(r"^KDUMP_CMDLINE_APPEND=(.*)$", re.M)  # in the defaults file
APPEND_DEFAULT = re.compile(  # kdump-config's own default
    r'^KDUMP_CMDLINE_APPEND=\$\{KDUMP_CMDLINE_APPEND:=(".*")\}', re.M
)


def dump_format(head: bytes) -> DumpFormat | None:
    """The dump format `head` (a file's first bytes) starts with, None for anything else."""
    for magic, fmt in HEADERS:
        if head.startswith(magic):
            if fmt is DumpFormat.ELF and not _elf_core(head):
                return None
            return fmt
    return None


def _elf_core(head: bytes) -> bool:
    if len(head) < 18 or head[5] not in (1, 2):  # EI_DATA: little or big endian
        return False
    return int.from_bytes(head[16:18], "little" if head[5] == 1 else "big") == ET_CORE


@dataclass(frozen=True)
class Entry:
    name: str
    directory: bool
    bytes: int


class Filesystem:
    """An ext2/3/4 filesystem in a raw file, read with debugfs (read-only)."""

    def __init__(self, raw: str, offset: int = 0) -> None:
        self.debugfs = tool("debugfs", "e2fsprogs")
        self.name = f"{raw}?offset={offset}" if offset else raw

    def _run(self, request: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [self.debugfs, "-R", request, self.name], capture_output=True, check=False
        )

    def listing(self, path: str) -> list[Entry] | None:
        """The entries of directory `path` (. and .. left out), None when it is not there."""
        done = self._run(f"ls -p {path}")
        if done.returncode != 0 or b"not found" in done.stderr or b"Bad magic" in done.stderr:
            return None
        entries = []
        for line in done.stdout.decode(errors="replace").splitlines():
            parts = line.split("/")  # /inode/mode/uid/gid/name/size/
            if len(parts) < 7 or parts[5] in (".", ".."):
                continue
            size = int(parts[6]) if parts[6].isdigit() else 0
            entries.append(Entry(parts[5], parts[2].startswith("04"), size))
        return entries

    def copy_out(self, path: str, into: str) -> bool:
        """Directory `path` and what it holds, written under the host directory `into`
        (debugfs' rdump); False when it is not there."""
        done = self._run(f'rdump "{path}" "{into}"')
        return done.returncode == 0 and os.path.isdir(os.path.join(into, os.path.basename(path)))

    def read(self, path: str, limit: int) -> bytes:
        """The first `limit` bytes of file `path` (debugfs' cat, stopped there)."""
        with subprocess.Popen(
            [self.debugfs, "-R", f"cat {path}", self.name],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        ) as proc:
            assert proc.stdout is not None
            data = proc.stdout.read(limit)
            proc.kill()
        return data


@dataclass(frozen=True)
class DumpCheck:
    """What the trial left on the disk: the dump saved, or why none counts (`problem`)."""

    dump: DumpFile | None
    problem: str = ""


def raw_copy(disk: str, out: str, fmt: str = "qcow2") -> str:
    """`disk` (an overlay: with its backing disk) as one sparse raw file (qemu-img convert)."""
    qemu_img = tool("qemu-img", "qemu-utils")
    run_tool([qemu_img, "convert", "-f", fmt, "-O", "raw", disk, out], f"cannot read {disk}")
    return out


@dataclass(frozen=True)
class DiskFacts:
    """What a root disk itself holds, read once per disk file."""

    dumps: frozenset[str]  # the directories /var/crash already has: a trial's dump is new
    capture_append: str | None  # kdump-tools' KDUMP_CMDLINE_APPEND (None: not kdump-tools)
    packages: Mapping[str, str]  # process name -> the dpkg package of the file it runs


def disk_facts(disk: RootDisk) -> DiskFacts:
    """The disk's DiskFacts: a raw disk read in place, a qcow2 one through a raw copy."""
    st = os.stat(disk.path)
    return _disk_facts(disk.path, disk.format, disk.offset, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _disk_facts(path: str, fmt: str, offset: int, _mtime: int, _size: int) -> DiskFacts:
    if fmt == "raw":
        return _facts(Filesystem(path, offset))
    with lifetime.temp_dir("kdump") as tmp:
        return _facts(Filesystem(raw_copy(path, f"{tmp}/base.raw", fmt), offset))


def _facts(fs: Filesystem) -> DiskFacts:
    dumps = frozenset(e.name for e in fs.listing(CRASH_DIR) or () if e.directory)
    return DiskFacts(dumps, capture_append(fs), process_packages(fs))


def process_packages(fs: Filesystem) -> dict[str, str]:
    """Process name (as /proc/*/status says it: the file's name, cut to 15 bytes) -> the
    package that ships a program of that name on the disk, from its dpkg database (every
    package's list of files); empty where the disk has none."""
    from footprint.components.processes import COMM_BYTES, RENAMED

    by_name: dict[str, str] = {}
    with lifetime.temp_dir("kdump") as tmp:
        if not fs.copy_out(DPKG_INFO, tmp):
            return by_name
        info = os.path.join(tmp, os.path.basename(DPKG_INFO))
        for list_file in sorted(os.listdir(info)):
            if not list_file.endswith(".list"):
                continue
            package = list_file.removesuffix(".list").split(":", 1)[0]  # libc6:amd64
            with open(os.path.join(info, list_file), encoding="utf-8", errors="replace") as f:
                for line in f:
                    path = line.rstrip("\n")
                    if PROGRAM_DIRS.match(os.path.dirname(path)):
                        by_name.setdefault(os.path.basename(path)[:COMM_BYTES], package)
    for name, file in RENAMED.items():
        if file[:COMM_BYTES] in by_name:
            by_name[name] = by_name[file[:COMM_BYTES]]
    return by_name


def capture_append(fs: Filesystem) -> str | None:
    """What kdump-tools appends to the capture kernel's command line on this disk: its
    defaults file's KDUMP_CMDLINE_APPEND, else kdump-config's own default."""
    for path, pattern in ((KDUMP_DEFAULTS, APPEND_SET), (KDUMP_CONFIG, APPEND_DEFAULT)):
        m = pattern.search(fs.read(path, 1 << 20).decode(errors="replace"))
        if m:
            words = shlex.split(m.group(1), comments=True)
            return " ".join(words)
    return None


def check_dump(fs: Filesystem, before: frozenset[str], crashed_ram_bytes: int) -> DumpCheck:
    """The newest dump directory not in `before`, checked; the first problem found else."""
    listing = fs.listing(CRASH_DIR)
    if listing is None:
        return DumpCheck(None, f"no {CRASH_DIR} on the root disk")
    new = sorted(e.name for e in listing if e.directory and e.name not in before)
    if not new:
        return DumpCheck(None, f"nothing was written to {CRASH_DIR}")
    where = f"{CRASH_DIR}/{new[-1]}"
    files = {e.name: e for e in fs.listing(where) or () if not e.directory}
    dumps = [e for n, e in files.items() if n.startswith(DUMP_NAMES)]
    if not dumps:
        for name in INCOMPLETE:
            if name in files:
                return DumpCheck(
                    None,
                    f"the dump was not finished: {where}/{name} ({files[name].bytes} bytes)",
                )
        return DumpCheck(None, f"no dump file in {where} ({', '.join(sorted(files)) or 'empty'})")
    dump = dumps[0]
    path = f"{where}/{dump.name}"
    fmt = dump_format(fs.read(path, 64))
    if fmt is None:
        return DumpCheck(None, f"{path} has no dump header (KDUMP, makedumpfile or ELF core)")
    if not MIN_DUMP_BYTES <= dump.bytes <= crashed_ram_bytes + SLACK_BYTES:
        return DumpCheck(None, f"{path} is {dump.bytes} bytes, not a dump of this machine")
    dmesg = next((n for n in sorted(files) if n.startswith("dmesg.")), None)
    if dmesg is None:
        return DumpCheck(None, f"no dmesg.* beside {path}")
    text = fs.read(f"{where}/{dmesg}", 4 * MIB).decode(errors="replace")
    if not any(word in text for word in PANIC_WORDS):
        return DumpCheck(None, f"{where}/{dmesg} does not show the panic")
    return DumpCheck(DumpFile(path, dump.bytes, fmt, f"{where}/{dmesg}"))
