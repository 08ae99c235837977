"""The capture kernel's own size, from its bzImage (or a UKI's .linux, or a bare vmlinux).

The x86 boot protocol header says where the compressed vmlinux lies (payload_offset/length)
and how much memory the kernel needs to start (init_size); the payload is decompressed with
the image codecs and the ELF inside is measured with lief (in the worker), so the figure is
the kernel's PT_LOAD memory size: text, data and bss.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from footprint.arch import DEFAULT, Arch
from footprint.elf.facts import ELF_MAGIC
from footprint.errors import BadImage, UsageError
from footprint.image import codecs
from footprint.image.stream import FileSource
from footprint.image.uki import linux_section


@dataclass(frozen=True)
class KernelImage:
    path: str
    file_bytes: int  # the bzImage (or .linux section) as stored
    version: str
    init_size: int  # boot protocol: memory needed to start, 0 if unknown
    vmlinux: bytes | None  # the decompressed ELF, to be measured with lief


def _bzimage(f: BinaryIO, start: int, length: int, path: str, arch: Arch = DEFAULT) -> KernelImage:
    h = arch.kernel_header
    f.seek(start)
    head = f.read(h.length)
    magic_end = h.magic_offset + len(h.magic)
    if len(head) < h.init_size_offset + 4 or head[h.magic_offset : magic_end] != h.magic:
        raise BadImage(
            f"{path} is not an {arch.name} {arch.kernel_format} "
            f"(no {h.magic.decode()!r} boot header)"
        )
    (version,) = struct.unpack_from("<H", head, h.version_offset)
    setup_sects = head[h.setup_sects_offset] or 4
    (ver_ptr,) = struct.unpack_from("<H", head, h.kernel_version_offset)
    kversion = ""
    if ver_ptr:
        f.seek(start + ver_ptr + 0x200)
        kversion = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    init_size = (
        struct.unpack_from("<I", head, h.init_size_offset)[0] if version >= h.init_size_since else 0
    )
    vmlinux = None
    if version >= h.payload_since:
        payload_offset, payload_length = struct.unpack_from("<II", head, h.payload_offset)
        payload = start + (setup_sects + 1) * 512 + payload_offset
        src = FileSource(f, payload, payload_length)
        codec = codecs.detect(src.peek(6))
        if codec is not None:
            member = codec.open(src, payload)
            vmlinux = b"".join(member.remaining())
    return KernelImage(path, length, kversion, init_size, vmlinux)


def read_kernel(path: str) -> KernelImage:
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as e:
        raise UsageError(f"cannot read kernel {path}: {e.strerror}") from None
    with f:
        size = f.seek(0, 2)
        f.seek(0)
        magic = f.read(4)
        if magic == ELF_MAGIC:
            f.seek(0)
            return KernelImage(path, size, "", 0, f.read())
        linux = linux_section(f, path)
        if linux is not None:
            return _bzimage(f, linux[0], linux[1], path)
        return _bzimage(f, 0, size, path)


def build_id(kernel: KernelImage) -> tuple[str, str]:
    """The GNU build-id note of the vmlinux inside the image (lief), hex, and where it was
    read; ("", why not) when the image has none."""
    if kernel.vmlinux is None:
        return "", "no vmlinux: the image's payload is not one the image codecs decompress"
    import lief

    lief.logging.disable()
    binary = lief.ELF.parse(kernel.vmlinux)
    if binary is None:
        return "", "lief cannot parse the vmlinux inside the image"
    for note in binary.notes:
        if note.type == lief.ELF.Note.TYPE.GNU_BUILD_ID:
            return bytes(note.description).hex(), "ELF note GNU build-id of the vmlinux (lief)"
    return "", "the vmlinux has no GNU build-id note"
