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


def _bzimage(f: BinaryIO, start: int, length: int, path: str) -> KernelImage:
    f.seek(start)
    head = f.read(0x270)
    if len(head) < 0x264 or head[0x202:0x206] != b"HdrS":
        raise BadImage(f"{path} is not an x86 bzImage (no 'HdrS' boot header)")
    (version,) = struct.unpack_from("<H", head, 0x206)
    setup_sects = head[0x1F1] or 4
    (ver_ptr,) = struct.unpack_from("<H", head, 0x20E)
    kversion = ""
    if ver_ptr:
        f.seek(start + ver_ptr + 0x200)
        kversion = f.read(256).split(b"\0", 1)[0].decode(errors="replace")
    init_size = struct.unpack_from("<I", head, 0x260)[0] if version >= 0x20A else 0
    vmlinux = None
    if version >= 0x208:
        payload_offset, payload_length = struct.unpack_from("<II", head, 0x248)
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
