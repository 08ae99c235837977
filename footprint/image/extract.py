"""Unpack an image into a directory, confined to it by construction.

Paths come from the kernel model (Rootfs: symlinks followed as if the directory were the
root); a name or symlink that would climb above it is refused; every file is created through
a directory descriptor opened component by component with O_NOFOLLOW, so no symlink on disk,
even one left there before (--force), can redirect a write outside the directory.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO

from footprint.errors import EnvironmentUnavailable, UnsafeExtraction, UsageError
from footprint.image.cpio import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK, CpioEntry, EntryData
from footprint.image.rootfs import Node, Rootfs, split_layer

# An inner image's tree (squashfs-root.img) is written beside the image's: <image path>.d/
LAYER_DIR_SUFFIX = ".d"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExtractResult:
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    devices: int = 0
    bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)  # unsafe: never written
    skipped: list[tuple[str, str]] = field(default_factory=list)  # not created, and why

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "dirs": self.dirs,
            "symlinks": self.symlinks,
            "hardlinks": self.hardlinks,
            "devices": self.devices,
            "bytes": self.bytes,
            "refused": [{"name": n, "reason": r} for n, r in self.refused],
            "skipped": [{"name": n, "reason": r} for n, r in self.skipped],
        }


MAX_MTIME = (2**63 - 1) // 1_000_000_000  # the latest time utime(ns=) takes


class _Writer:
    """Creates each entry under `root`, mirroring what the kernel does in rootfs."""

    def __init__(self, root: str, rootfs: Rootfs, devices: bool) -> None:
        self.root, self.rootfs, self.devices = root, rootfs, devices
        self.is_root = os.geteuid() == 0
        self.result = ExtractResult()
        self._root_fd = os.open(root, _DIR_FLAGS)
        self._cached: tuple[str, int] | None = None  # the last parent opened
        self._inode_paths: dict[int, str] = {}  # inode id -> first path written
        self._dirs: list[tuple[str, int, int]] = []  # (path, mode, mtime), fixed up at the end
        self._layer_dirs: set[str] = set()  # inner images whose directory exists

    def close(self) -> None:
        self._drop_cache()
        os.close(self._root_fd)

    def _drop_cache(self) -> None:
        if self._cached is not None:
            os.close(self._cached[1])
            self._cached = None

    def _open_dir(self, path: str) -> int:
        """A new descriptor of directory `path`, opened without following any symlink."""
        fd = os.dup(self._root_fd)
        try:
            for part in filter(None, path.split("/")):
                nfd = os.open(part, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _parent_fd(self, parent: str) -> int:
        if not parent:
            return self._root_fd
        if self._cached is None or self._cached[0] != parent:
            fd = self._open_dir(parent)
            self._drop_cache()
            self._cached = (parent, fd)
        return self._cached[1]

    def visit(self, entry: CpioEntry, data: EntryData | None, node: Node | None) -> None:
        if node is None:
            self.result.skipped.append((entry.name, "the kernel would not create it"))
            return
        if not node.path:  # the root itself: only its mode and time
            self._dirs.append(("", entry.mode, entry.mtime))
            return
        if node.layer:
            self._visit_inner(entry, data, node)
            return
        if self.rootfs.resolve(entry.name, confined=True) != node.path:
            self.result.refused.append(
                (
                    entry.name,
                    "its path climbs out of the target directory (via '..' or a relative symlink)",
                )
            )
            return
        self._write(entry, data, node)

    def _visit_inner(self, entry: CpioEntry, data: EntryData | None, node: Node) -> None:
        """A file of an inner image: into <image>.d/, confined by the image's own tree."""
        layer = self.rootfs.layers[node.layer]
        inner = split_layer(node.path)[1]
        if layer.tree.resolve(split_layer(entry.name)[1], confined=True) != inner:
            self.result.refused.append(
                (entry.name, "its path climbs out of its image's root (via '..' or a symlink)")
            )
            return
        top = node.layer + LAYER_DIR_SUFFIX
        if node.layer not in self._layer_dirs:
            self._layer_dirs.add(node.layer)
            made = Node(top, DIR, stat.S_IFDIR | 0o755, 0, 0, entry.mtime, node.segment)
            self._write(replace(entry, name=top, mode=made.mode, size=0), None, made)
        self._write(entry, data, replace(node, path=f"{top}/{inner}"))

    def _write(self, entry: CpioEntry, data: EntryData | None, node: Node) -> None:
        parent, _, name = node.path.rpartition("/")
        try:
            pfd = self._parent_fd(parent)
        except OSError as e:
            reason = (
                "a symlink or non-directory is in the way"
                if e.errno in (errno.ELOOP, errno.ENOTDIR)
                else os.strerror(e.errno or 0)
            )
            self.result.refused.append((entry.name, reason))
            return
        try:
            self._create(entry, data, node, pfd, name)
        except OSError as e:
            if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
                raise EnvironmentUnavailable(f"cannot write {node.path}: {e.strerror}") from None
            self.result.skipped.append((entry.name, e.strerror or str(e)))

    def _clear(self, pfd: int, name: str, keep: int) -> None:
        """clean_path(): remove what is at `name` if it is not of type `keep`."""
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_IFMT(st.st_mode) == keep:
            return
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=pfd)
        else:
            os.unlink(name, dir_fd=pfd)

    def _create(
        self, entry: CpioEntry, data: EntryData | None, node: Node, pfd: int, name: str
    ) -> None:
        kind, r = node.kind, self.result
        perm = entry.mode & 0o7777
        if kind == DIR:
            self._clear(pfd, name, stat.S_IFDIR)
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
                r.dirs += 1
            except FileExistsError:
                pass
            self._own(pfd, name, entry)
            self._dirs.append((node.path, perm, entry.mtime))
            return
        if kind == FILE:
            self._clear(pfd, name, stat.S_IFREG)
            self._write_file(entry, data, node, pfd, name)
            return
        if kind == SYMLINK:
            self._clear(pfd, name, 0)
            os.symlink(node.target or "", name, dir_fd=pfd)
            r.symlinks += 1
        elif kind in (CHAR, BLOCK, SOCKET):
            if kind != SOCKET and not (self.devices and self.is_root):
                why = "device nodes need --devices" if not self.devices else "not root"
                r.skipped.append(
                    (entry.name, f"{kind} device {node.rdev[0]}:{node.rdev[1]}: {why}")
                )
                return
            self._clear(pfd, name, 0)
            os.mknod(name, stat.S_IFMT(entry.mode) | perm, os.makedev(*node.rdev), dir_fd=pfd)
            r.devices += 1
        elif kind == FIFO:
            self._clear(pfd, name, 0)
            os.mkfifo(name, perm, dir_fd=pfd)
            r.devices += 1
        else:
            r.skipped.append((entry.name, f"unknown file type {entry.mode:o}"))
            return
        self._own(pfd, name, entry)
        if kind != SYMLINK:
            os.chmod(name, perm, dir_fd=pfd)
        self._utime(pfd, name, entry.mtime)

    def _write_file(
        self, entry: CpioEntry, data: EntryData | None, node: Node, pfd: int, name: str
    ) -> None:
        r = self.result
        inode = node.inode
        first = self._inode_paths.get(id(inode)) if inode is not None else None
        flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        if first is not None and first != node.path:
            os.link(first, name, src_dir_fd=self._root_fd, dst_dir_fd=pfd, follow_symlinks=False)
            r.hardlinks += 1
            if not entry.size:
                return
        else:
            flags |= os.O_CREAT | os.O_TRUNC
            if inode is not None:
                self._inode_paths[id(inode)] = node.path
            r.files += 1
        fd = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            if entry.size:
                os.ftruncate(fd, entry.size)
            if data is not None:
                for chunk in data.chunks():
                    r.bytes += os.write(fd, chunk)
            if self.is_root:
                os.fchown(fd, entry.uid, entry.gid)
            os.fchmod(fd, entry.mode & 0o7777)
        finally:
            os.close(fd)
        self._utime(pfd, name, entry.mtime)

    def _own(self, pfd: int, name: str, entry: CpioEntry) -> None:
        if self.is_root:
            os.chown(name, entry.uid, entry.gid, dir_fd=pfd, follow_symlinks=False)

    @staticmethod
    def _utime(pfd: int, name: str, mtime: int) -> None:
        ns = _ns(mtime)
        os.utime(name, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    def finish(self) -> None:
        """Directory modes and times last, deepest first (as the kernel's dir_utime())."""
        self._drop_cache()
        for path, mode, mtime in reversed(self._dirs):
            try:
                fd = self._open_dir(path)
            except OSError:
                continue
            try:
                os.fchmod(fd, mode & 0o7777 or 0o755)
                ns = _ns(mtime)
                os.utime(fd, ns=(ns, ns))
            finally:
                os.close(fd)


def _ns(mtime: int) -> int:
    """An entry's mtime (seconds) as utime's nanoseconds, clamped to what time_t holds: an
    inner image's 64-bit times (erofs) may say any year."""
    return min(max(mtime, 0), MAX_MTIME) * 1_000_000_000


def extract(
    image: str,
    directory: str,
    force: bool = False,
    devices: bool = False,
    file: BinaryIO | None = None,
) -> ExtractResult:
    """Unpack `image` (or the already open `file`) into `directory`."""
    from footprint.image.reader import scan

    root = os.path.abspath(directory)
    created = False
    if os.path.lexists(root):
        if not os.path.isdir(root) or os.path.islink(root):
            raise UsageError(f"{directory} exists and is not a directory")
        if os.listdir(root) and not force:
            raise UnsafeExtraction(
                f"{directory} is not empty — extract into an empty "
                "directory, or pass --force to write over its content"
            )
    else:
        try:
            os.makedirs(root)
        except OSError as e:
            raise UsageError(f"cannot create {directory}: {e.strerror}") from None
        created = True
    rootfs = Rootfs()
    writer = _Writer(root, rootfs, devices)
    ok = False
    try:
        scan(image, visit=writer.visit, rootfs=rootfs, file=file)
        writer.finish()
        ok = True
    finally:
        writer.close()
        if not ok and created:
            shutil.rmtree(root, ignore_errors=True)  # ours, and half-made: nothing to keep
    return writer.result
