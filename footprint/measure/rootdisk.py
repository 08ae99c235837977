"""A root disk for the capture kernel, as in production: its format (qemu-img info), its layout
(util-linux's sfdisk --json and blkid -p) and so the root= the capture boots with, and a
copy-on-write overlay per trial, so that the user's file is never written.

Layout: a filesystem on the whole disk is root=/dev/vda; a partition table gives its first
Linux partition, /dev/vdaN; `--root` overrides root= (a /dev/vdaN there also says which
partition holds the dump). The tools read a raw copy of the disk's first MiB (qemu-img dd, so
that qcow2 reads the same), made sparse at the disk's size, as they would read the disk, and
the first MiB of the partition chosen.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from footprint import lifetime
from footprint.errors import BadImage, EnvironmentUnavailable, UsageError

DEVICE = "/dev/vda"  # the first virtio-blk disk, on every architecture
FORMATS = ("raw", "qcow2")
HEAD_BYTES = 1 << 20  # a partition table (GPT's entries end at 17 KiB)
PROBE_BYTES = 1 << 20  # a filesystem's superblocks, for blkid
# Linux partition types: MBR 0x83; GPT "Linux filesystem" and the discoverable roots of x86-64,
# x86 and aarch64 (the UAPI group's Discoverable Partitions Specification).
LINUX_TYPES = frozenset(
    {
        "83",
        "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "44479540-F297-41B2-9AF7-D131D5F0458A",
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
    }
)
_PARTITION = re.compile(rf"{DEVICE}(?:p?([1-9][0-9]*))?")


@dataclass(frozen=True)
class RootDisk:
    """A disk image the capture kernel mounts as its root, and where its filesystem is."""

    path: str  # absolute, as the overlay's backing file
    format: str  # raw or qcow2
    virtual_bytes: int
    root: str  # root= on the capture command line
    offset: int  # bytes from the disk's start to the filesystem that holds /var/crash
    filesystem: str  # blkid's TYPE of that filesystem ("" when blkid knows none)
    partition: int | None  # its number, None for a whole-disk filesystem


def tool(name: str, package: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise EnvironmentUnavailable(f"{name} is not installed — apt-get install {package}")
    return found


def run_tool(cmd: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """`cmd`'s output; BadImage with its own last line of stderr when it fails."""
    done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", check=False)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise BadImage(f"{what}: {why}")
    return done


def disk_info(path: str) -> tuple[str, int]:
    """The disk's format and virtual size, as qemu-img reads them (never by file name)."""
    qemu_img = tool("qemu-img", "qemu-utils")
    done = run_tool(
        [qemu_img, "info", "--output=json", path], f"{path} is not a disk image qemu-img reads"
    )
    info = json.loads(done.stdout)
    return str(info["format"]), int(info["virtual-size"])


def head_copy(path: str, fmt: str, size: int, out: str) -> str:
    """A sparse raw file of the disk's size holding its first HEAD_BYTES (qemu-img dd)."""
    _dd(path, fmt, out, 0, min(HEAD_BYTES, size))
    os.truncate(out, size)
    return out


def _dd(path: str, fmt: str, out: str, offset: int, length: int) -> None:
    """`length` bytes of the disk from `offset` (both whole 512-byte sectors) into `out`.
    qemu-img dd (7.2) counts the skipped blocks in count= ("cannot skip to specified offset"
    otherwise): it stops at count, not after it."""
    qemu_img = tool("qemu-img", "qemu-utils")
    skip = offset // 512
    run_tool(
        [qemu_img, "dd", "-f", fmt, "-O", "raw", "bs=512", f"skip={skip}",
         f"count={skip + max(1, length // 512)}", f"if={path}", f"of={out}"],
        f"cannot read {path}",
    )  # fmt: skip


def partition_filesystem(path: str, fmt: str, offset: int, scratch: str) -> str:
    """blkid's TYPE of the filesystem starting at `offset` of the disk, from its first MiB."""
    out = os.path.join(scratch, "partition-head.raw")
    try:
        _dd(path, fmt, out, offset, PROBE_BYTES)
        return filesystem_at(out, 0)
    finally:
        if os.path.exists(out):
            os.unlink(out)


def filesystem_at(path: str, offset: int) -> str:
    """blkid's low-level probe of the filesystem at `offset` (TYPE), "" when there is none."""
    blkid = tool("blkid", "util-linux")
    done = subprocess.run(
        [blkid, "-p", "-O", str(offset), "-o", "export", path],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
    )
    values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return values.get("TYPE", "") if values.get("USAGE", "filesystem") == "filesystem" else ""


@dataclass(frozen=True)
class Partition:
    number: int
    offset: int  # bytes
    type: str  # MBR's hex id or GPT's type GUID, upper case


def partitions(path: str) -> list[Partition]:
    """sfdisk --json's partitions, [] when `path` has no partition table."""
    sfdisk = tool("sfdisk", "fdisk")
    done = subprocess.run(
        [sfdisk, "--json", path], capture_output=True, text=True, errors="replace", check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        return []
    table = json.loads(done.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", 512))
    return [
        Partition(
            int(re.findall(r"[0-9]+$", p["node"])[-1]),
            int(p["start"]) * sector,
            str(p["type"]).upper(),
        )
        for p in table.get("partitions", [])
    ]


def _partition(table: list[Partition], root: str | None, path: str) -> Partition | None:
    """The partition that holds the root: the one --root /dev/vdaN names, else the first
    Linux one; None for --root /dev/vda (or another spec) or a disk with no table."""
    m = _PARTITION.fullmatch(root) if root is not None else None
    if m is not None and m.group(1):
        number = int(m.group(1))
        for p in table:
            if p.number == number:
                return p
        raise UsageError(f"--root {root}: {path} has no partition {number}")
    if root is not None and (m is not None or not table):
        return None
    return next((p for p in table if p.type in LINUX_TYPES), None)


def open_disk(path: str, scratch: str, root: str | None = None) -> RootDisk:
    """Read `path`'s format and layout (in the directory `scratch`) into a RootDisk.

    BadImage when it is not a raw or qcow2 disk, or holds neither a filesystem nor a Linux
    partition (unless `root` says where the root is); UsageError for a --root naming a
    partition the disk does not have."""
    if not os.path.isfile(path):
        raise UsageError(f"root disk {path} is not a file")
    path = os.path.abspath(path)
    fmt, size = disk_info(path)
    if fmt not in FORMATS:
        raise BadImage(
            f"{path} is a {fmt} disk — footprint attaches raw or qcow2 ones: "
            f"qemu-img convert -O qcow2 {path} disk.qcow2"
        )
    head = head_copy(path, fmt, size, os.path.join(scratch, "head.raw"))
    try:
        table = partitions(head)
        chosen = _partition(table, root, path)
        whole = "" if table else filesystem_at(head, 0)
    finally:
        os.unlink(head)
    offset = chosen.offset if chosen is not None else 0
    filesystem = partition_filesystem(path, fmt, offset, scratch) if chosen else whole
    if chosen is not None:
        spec = f"{DEVICE}{chosen.number}"
    elif filesystem and not table:
        spec = DEVICE
    elif root is None:
        what = (
            f"a partition table with no Linux partition ({len(table)} partitions)"
            if table
            else "neither a partition table nor a filesystem"
        )
        raise BadImage(f"{path} holds {what} — give the root disk of the system you ship")
    else:
        spec = root
    number = chosen.number if chosen is not None else None
    return RootDisk(path, fmt, size, root or spec, offset, filesystem, number)


def read_disk(path: str, root: str | None = None) -> RootDisk:
    """open_disk() in a temporary directory of its own: to check a disk before any boot."""
    with lifetime.temp_dir("kdump") as tmp:
        return open_disk(path, tmp, root)


def overlay(disk: RootDisk, directory: str) -> str:
    """A qcow2 overlay of `disk` in `directory`: the trial writes there, never to the disk."""
    qemu_img = tool("qemu-img", "qemu-utils")
    out = os.path.join(directory, "root-overlay.qcow2")
    run_tool(
        [qemu_img, "create", "-q", "-f", "qcow2", "-b", disk.path, "-F", disk.format, out],
        f"cannot make an overlay of {disk.path}",
    )
    return out


def drive_option(overlay_path: str) -> list[str]:
    """QEMU's options attaching the overlay as the first virtio disk (commas doubled)."""
    return ["-drive", f"file={overlay_path.replace(',', ',,')},format=qcow2,if=virtio"]
