"""Real dracut images whose root is a squashfs or erofs image inside the cpio (make
samples-squash, issue 16): the images exist and the inner filesystem is found by its magic."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest
from conftest import REAL, need

from footprint.image.reader import scan

pytestmark = pytest.mark.integration

SQUASH = Path(os.environ.get("FOOTPRINT_SQUASH_IMAGES", REAL / "squash"))

# Each image, and the inner filesystem its cpio must hold (None: the same tree, not squashed).
IMAGES = {
    "dracut-trixie.img": None,
    "dracut-trixie-squashfs.img": "squashfs",
    "dracut-trixie-erofs.img": "erofs",
}
SQUASHFS_MAGIC = b"hsqs"  # at offset 0, little-endian superblock
EROFS_MAGIC = struct.pack("<I", 0xE0F5E1E2)  # at offset 1024
EROFS_SB = 1024


def squash_image(name: str) -> Path:
    path = SQUASH / name
    need(path.exists(), f"{path} is missing: run `make samples-squash` (root, debootstrap)")
    return path


def filesystem(head: bytes) -> str | None:
    if head[:4] == SQUASHFS_MAGIC:
        return "squashfs"
    if head[EROFS_SB : EROFS_SB + 4] == EROFS_MAGIC:
        return "erofs"
    return None


def inner_images(image: Path) -> dict[str, tuple[str, int, bytes]]:
    """path -> (filesystem, size, first bytes) of every regular file with a filesystem magic."""
    found: dict[str, tuple[str, int, bytes]] = {}

    def look(entry, data, node):  # noqa: ANN001
        if node is None or data is None:
            return
        head = data.peek(EROFS_SB + 64)
        kind = filesystem(head)
        if kind is not None:
            found[node.path] = (kind, data.size, head)

    scan(str(image), visit=look)
    return found


@pytest.mark.parametrize("name", [*IMAGES, "trixie-vmlinuz"])
def test_image_exists(name: str) -> None:
    assert squash_image(name).stat().st_size > 1_000_000


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_inner_image_found_by_magic(name: str) -> None:
    found = inner_images(squash_image(name))
    want = IMAGES[name]
    if want is None:
        assert found == {}
        return
    assert len(found) == 1, found
    ((path, (kind, size, head)),) = found.items()
    assert kind == want
    assert path == f"{want}-root.img"  # dracut 106's name, at the top of the loader cpio
    if kind == "squashfs":
        # bytes_used (offset 40) is the image; mksquashfs pads the file to 4 KiB.
        (used,) = struct.unpack_from("<Q", head, 40)
        assert used <= size and size % 4096 == 0
    else:
        # blkszbits (offset 12) and blocks (offset 36) of the superblock give the file's size.
        blkszbits = head[EROFS_SB + 12]
        (blocks,) = struct.unpack_from("<I", head, EROFS_SB + 36)
        assert blocks << blkszbits == size


@pytest.mark.parametrize("name", ["dracut-trixie-squashfs.img", "dracut-trixie-erofs.img"])
def test_squashed_image_has_the_loader_init(name: str) -> None:
    """dracut's squash-lib /init: mounts the inner image under /squash/root and switches root."""
    init: dict[str, bytes] = {}

    def grab(entry, data, node):  # noqa: ANN001
        if node is not None and node.path == "init" and data is not None:
            init["init"] = data.read()

    inv = scan(str(squash_image(name)), visit=grab)
    assert [s.codec for s in inv.segments] == ["none"]  # dracut leaves the loader cpio plain
    script = init["init"]
    assert script.startswith(b"#!/bin/sh")
    assert b"/squash/root" in script and b"switch_root" in script
