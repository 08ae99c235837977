"""The tree the kernel leaves in rootfs after unpacking every member, without the file data.

Rootfs.add() applies one cpio entry with init/initramfs.c's rules: parents must exist (through
symlinks), a later regular file truncates and rewrites the earlier one, an entry of another
type replaces it, hardlinks share one inode until the archive's trailer.
"""

from __future__ import annotations

import os
import posixpath
import stat
from dataclasses import dataclass, field

from footprint.image.cpio import BLOCK, CHAR, DIR, FIFO, FILE, SOCKET, SYMLINK, CpioEntry

DEVICE_KINDS = frozenset({CHAR, BLOCK, FIFO, SOCKET})
MAX_SYMLINK_HOPS = 40  # the kernel's MAXSYMLINKS


def _climbs(relpath: str) -> bool:
    """Whether a relative path's `..` components reach above its starting directory."""
    depth = 0
    for part in relpath.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


@dataclass(slots=True)
class Inode:
    size: int = 0
    names: int = 0


@dataclass(slots=True)
class Node:
    """A path in the unpacked tree."""

    path: str  # normalised, relative to the root, "" for the root itself
    kind: str
    mode: int
    uid: int
    gid: int
    mtime: int
    segment: int
    inode: Inode | None = None  # regular files
    target: str | None = None  # symlinks
    rdev: tuple[int, int] = (0, 0)  # device nodes
    layer: str = ""  # "" in the cpio rootfs; else the path of the inner image it lives in

    @property
    def size(self) -> int:
        if self.inode is not None:
            return self.inode.size
        return len(os.fsencode(self.target)) if self.target is not None else 0


@dataclass(frozen=True)
class Skipped:
    """An entry the kernel would not create, and why."""

    name: str
    segment: int
    reason: str


LAYER_SEP = "//"  # between an inner image's path and a path inside it: "squashfs-root.img//usr"


def split_layer(path: str) -> tuple[str, str]:
    """(the inner image's path, the path inside it) of a tree key; ("", path) in the rootfs."""
    outer, sep, inner = path.partition(LAYER_SEP)
    return (outer, inner) if sep else ("", path)


def inner_path(path: str) -> str:
    """The path as the files of its layer see it: inside an inner image, from its root."""
    return split_layer(path)[1]


@dataclass
class Layer:
    """A filesystem image in the tree (dracut's squashfs-root.img, erofs-root.img), read as a
    second layer: its files are nodes of the same tree, keyed `<image path>//<inner path>`.

    dracut's squash init mounts it (under an overlay) as the new root, so paths inside it —
    symlinks, library search paths — resolve against its own root, never the rootfs's.
    """

    path: str  # of the image file in the rootfs
    fstype: str  # squashfs, erofs
    compression: str
    image_bytes: int
    tree: Rootfs  # its own tree, keyed by inner paths
    warning: str | None = None  # why it was read only in part (a malformed image)

    def key(self, inner: str) -> str:
        return f"{self.path}{LAYER_SEP}{inner}"


@dataclass
class Rootfs:
    nodes: dict[str, Node] = field(default_factory=dict)
    overwritten_bytes: int = 0
    overwritten: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    _links: dict[tuple[int, int, int, int], str] = field(default_factory=dict)
    _archive: tuple[int, int] = (-1, -1)
    layers: dict[str, Layer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes[""] = Node("", DIR, stat.S_IFDIR | 0o755, 0, 0, 0, -1)

    # -- paths --------------------------------------------------------------------------
    def resolve(self, name: str, confined: bool = False) -> str | None:
        """Where `name` lands (see _resolve_here); `<image>//<path>` inside that image's layer."""
        layer = self._layer_of(name)
        if layer is not None:
            found = layer.tree.resolve(split_layer(name.lstrip("/"))[1], confined)
            return None if found is None else layer.key(found)
        return self._resolve_here(name, confined)

    def _layer_of(self, name: str) -> Layer | None:
        if not self.layers or LAYER_SEP not in name:
            return None
        return self.layers.get(split_layer(name.lstrip("/"))[0])

    def _resolve_here(self, name: str, confined: bool = False) -> str | None:
        """Where `name` lands: lexically normalised, parents followed through symlinks.

        None when a parent is missing or not a directory, or symlinks loop. The kernel stops
        a `..` at the root; with `confined`, a name or relative symlink whose `..` would climb
        above the root gives None instead (what a safe extraction must refuse).
        """
        if confined and _climbs(name.lstrip("/")):
            return None
        path = posixpath.normpath("/" + name).lstrip("/")
        if path == ".":
            path = ""
        parent, _, base = path.rpartition("/")
        node = self.nodes.get(parent)
        if node is not None and node.kind == DIR:
            return path
        if not path:
            return ""
        real_parent = self._resolve_dir(parent, confined)
        if real_parent is None:
            return None
        return f"{real_parent}/{base}" if real_parent else base

    def _resolve_dir(self, path: str, confined: bool = False) -> str | None:
        """The real directory `path` names, following every symlink in it."""
        done = ""
        todo = [c for c in path.split("/") if c]
        hops = 0
        while todo:
            part = todo.pop(0)
            cand = f"{done}/{part}" if done else part
            node = self.nodes.get(cand)
            if node is None:
                return None
            if node.kind == SYMLINK:
                hops += 1
                if hops > MAX_SYMLINK_HOPS or node.target is None:
                    return None
                target = node.target
                start = "" if target.startswith("/") else done
                if confined and _climbs(posixpath.join(start, target.lstrip("/"))):
                    return None
                joined = posixpath.normpath("/" + posixpath.join(start, target)).lstrip("/")
                todo = [c for c in joined.split("/") if c] + todo
                done = ""
                continue
            if node.kind != DIR:
                return None
            done = cand
        return done

    def lookup(self, path: str) -> Node | None:
        """The node `path` names inside the tree, following every symlink (even the last)."""
        layer = self._layer_of(path)
        if layer is not None:
            inner = layer.tree.lookup(split_layer(path.lstrip("/"))[1])
            return None if inner is None else self.nodes.get(layer.key(inner.path))
        resolved = self.resolve(path)
        for _ in range(MAX_SYMLINK_HOPS):
            node = self.nodes.get(resolved) if resolved is not None else None
            if node is None or node.kind != SYMLINK or node.target is None:
                return node
            parent = node.path.rpartition("/")[0]
            target = node.target if node.target.startswith("/") else f"{parent}/{node.target}"
            resolved = self.resolve(target)
        return None

    # -- applying entries -----------------------------------------------------------------
    def add(self, entry: CpioEntry, archive: tuple[int, int]) -> Node | None:
        """Apply one entry; `archive` identifies the archive it came from (links reset)."""
        if archive != self._archive:
            self._archive = archive
            self._links.clear()
        if entry.skipped:
            return self._skip(entry, entry.skipped)
        path = self._resolve_here(entry.name)
        if path is None:
            return self._skip(entry, "its parent directory does not exist")
        kind = entry.kind
        old = self.nodes.get(path)
        if kind == DIR and (path == "" or (old is not None and old.kind == DIR)):
            node = old if old is not None else self.nodes[""]
            node.mode, node.uid, node.gid = entry.mode, entry.uid, entry.gid
            node.mtime = entry.mtime
            return node
        if old is not None and old.kind != kind:
            if not self._remove(old):
                return self._skip(entry, f"a non-empty directory is in the way at /{path}")
            old = None
        node = Node(path, kind, entry.mode, entry.uid, entry.gid, entry.mtime, entry.segment)
        if kind == FILE:
            return self._add_file(entry, node, old)
        if old is not None:  # same kind: mkdir/symlink/mknod fail with EEXIST
            return self._skip(entry, f"/{path} already exists")
        if kind in DEVICE_KINDS:
            node.rdev = (entry.rdev_major, entry.rdev_minor)
            if entry.nlink >= 2:
                linked = self._links.setdefault(entry.inode_key, path)
                if linked != path and linked in self.nodes:
                    self.nodes[path] = node
                    return node
        elif kind == SYMLINK:
            node.target = entry.target
        self.nodes[path] = node
        return node

    def _add_file(self, entry: CpioEntry, node: Node, old: Node | None) -> Node | None:
        path = node.path
        if entry.nlink >= 2:
            first = self._links.get(entry.inode_key)
            if first is None:
                self._links[entry.inode_key] = path
            else:
                target = self.nodes.get(first)
                if target is None or target.inode is None:
                    return self._skip(entry, f"its hardlink target /{first} is gone")
                if old is not None:
                    return self._skip(entry, f"/{path} already exists (hardlink)")
                inode = target.inode
                if entry.size:  # the body rewrites the shared inode (no O_TRUNC)
                    inode.size = entry.size
                inode.names += 1
                node.inode = inode
                self.nodes[path] = node
                return node
        if old is not None and old.inode is not None:
            # O_TRUNC on the existing inode: every name of it sees the new data.
            self.overwritten_bytes += old.inode.size
            self.overwritten.append((path, old.inode.size))
            old.inode.size = entry.size
            old.mode, old.uid, old.gid, old.mtime = entry.mode, entry.uid, entry.gid, entry.mtime
            old.segment = entry.segment
            return old
        node.inode = Inode(entry.size, 1)
        self.nodes[path] = node
        return node

    def _remove(self, node: Node) -> bool:
        """clean_path(): unlink, or rmdir if empty; False if the directory is not empty."""
        if node.kind == DIR:
            prefix = node.path + "/"
            if node.path == "" or any(p.startswith(prefix) for p in self.nodes):
                return False
        elif node.inode is not None:
            node.inode.names -= 1
            if node.inode.names == 0:
                self.overwritten_bytes += node.inode.size
                self.overwritten.append((node.path, node.inode.size))
        del self.nodes[node.path]
        return True

    def _skip(self, entry: CpioEntry, reason: str) -> Node | None:
        """Record an entry the kernel would not create; always None, for `return`."""
        self.skipped.append(Skipped(entry.name, entry.segment, reason))
        return None

    # -- inner images ----------------------------------------------------------------------------
    def add_inner(self, layer: Layer, entry: CpioEntry) -> Node | None:
        """Apply one entry of an inner image (its name relative to the image's root) to its
        layer's own tree, and add the node to this tree under the layer's key."""
        self.layers.setdefault(layer.path, layer)
        inner = layer.tree.add(entry, (0, 0))
        if inner is None:
            return None
        key = layer.key(inner.path)
        node = self.nodes.get(key)
        if node is None or node.inode is not inner.inode:
            node = Node(
                key, inner.kind, inner.mode, inner.uid, inner.gid, inner.mtime, inner.segment,
                inner.inode, inner.target, inner.rdev, layer.path,
            )  # fmt: skip
            self.nodes[key] = node
        return node

    def outer_nodes(self) -> dict[str, Node]:
        """The nodes of the cpio rootfs, without any inner image's."""
        if not self.layers:
            return self.nodes
        return {p: n for p, n in self.nodes.items() if not n.layer}

    # -- results ----------------------------------------------------------------------------
    def inodes(self, layers: bool = True) -> dict[int, tuple[Inode, Node]]:
        """Each live file inode once, with its first name in the tree (without `layers`, of
        the cpio rootfs only)."""
        seen: dict[int, tuple[Inode, Node]] = {}
        for node in self.nodes.values():
            if node.layer and not layers:
                continue
            if node.inode is not None and id(node.inode) not in seen:
                seen[id(node.inode)] = (node.inode, node)
        return seen
