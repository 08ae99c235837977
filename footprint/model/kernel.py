"""The capture kernel's own size and architecture, from its image: an x86 bzImage, an arm64
Image (bare, gzip-compressed, or inside an EFI zboot PE, as Debian's arm64 vmlinuz is), a UKI's
.linux, or a bare vmlinux (its ELF machine says the architecture).

The x86 boot protocol header says where the compressed vmlinux lies (payload_offset/length)
and how much memory the kernel needs to start (init_size); the payload is decompressed with
the image codecs and the ELF inside is measured with lief (in the worker), so the figure is
the kernel's PT_LOAD memory size: text, data and bss. The arm64 Image header
(Documentation/arch/arm64/booting.rst) says the same in image_size (text to the end of bss)
and its flags say the page size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

from footprint.arch import AARCH64, DEFAULT, X86_64, Arch, by_elf_machine
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
    arch: Arch = DEFAULT  # what the image is for
    page_size: int = 0  # what the image says (arm64's header flags), 0 if it does not
    image: bytes | None = None  # a decompressed arm64 Image, for what cannot boot the file
    text_offset: int = 0  # arm64: where in its 2 MiB-aligned base the Image wants to be
    format: str = ""  # bzImage, Image, Image.gz, zboot, vmlinux


# arm64 Image header: u32 code0, code1; u64 text_offset, image_size, flags, res2..4; u32 magic
ARM64_MAGIC = b"ARM\x64"
ARM64_MAGIC_OFFSET = 0x38
ARM64_PAGE_SIZES = {1: 4096, 2: 16384, 3: 65536}  # flags bits 1-2; 0: unspecified
# EFI zboot (drivers/firmware/efi/libstub/zboot-header.S): "MZ", u16, "zimg", u32 payload
# offset, u32 payload size, u32 u32, then the compression type as a NUL-terminated string.
ZBOOT_MAGIC = b"zimg"
ZBOOT_MAGIC_OFFSET = 4
GZIP_MAGIC = b"\x1f\x8b"
LINUX_BANNER = b"Linux version "


def is_arm64_image(head: bytes) -> bool:
    return head[ARM64_MAGIC_OFFSET : ARM64_MAGIC_OFFSET + 4] == ARM64_MAGIC


def is_zboot(head: bytes) -> bool:
    return head[:2] == b"MZ" and head[ZBOOT_MAGIC_OFFSET : ZBOOT_MAGIC_OFFSET + 4] == ZBOOT_MAGIC


def _decompress(f: BinaryIO, start: int, length: int, path: str, head: int = 0) -> bytes:
    """The payload at `start` decompressed (with `head`, only its first chunk or more)."""
    src = FileSource(f, start, length)
    codec = codecs.detect(src.peek(6))
    if codec is None:
        raise BadImage(f"{path}: the kernel's payload is in no format the image codecs read")
    chunks, got = [], 0
    for chunk in codec.open(src, start).remaining():
        chunks.append(chunk)
        got += len(chunk)
        if head and got >= head:
            break
    return b"".join(chunks)


def _banner(data: bytes) -> str:
    """The release and build words of the kernel's linux_banner ("Linux version 6.1.0-...")."""
    at = data.find(LINUX_BANNER)
    while at >= 0:
        end = data.find(b"\0", at)
        text = data[at + len(LINUX_BANNER) : end if end >= 0 else at + 512]
        if text[:1].isdigit():
            return text.decode(errors="replace").strip()
        at = data.find(LINUX_BANNER, at + 1)
    return ""


def arm64_image(data: bytes, path: str, file_bytes: int, fmt: str) -> KernelImage:
    """An arm64 Image (decompressed) as the capture kernel."""
    if len(data) < 64 or not is_arm64_image(data):
        raise BadImage(f"{path} is not an arm64 Image (no 'ARM\\x64' magic at 0x38)")
    text_offset, image_size, flags = struct.unpack_from("<QQQ", data, 8)
    if flags & 1:
        raise BadImage(f"{path} is a big-endian arm64 Image: footprint boots little-endian ones")
    page = ARM64_PAGE_SIZES.get((flags >> 1) & 3, 0)
    return KernelImage(
        path,
        file_bytes,
        _banner(data),
        image_size,
        None,
        arch=AARCH64,
        page_size=page,
        image=data if fmt != "Image" else None,
        text_offset=text_offset,
        format=fmt,
    )


def _bzimage(f: BinaryIO, start: int, length: int, path: str, arch: Arch = X86_64) -> KernelImage:
    h = arch.kernel_header
    assert h is not None
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
    return KernelImage(path, length, kversion, init_size, vmlinux, arch=X86_64, format="bzImage")


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
            data = f.read()
            (machine,) = struct.unpack_from("<H" if data[5] == 1 else ">H", data, 18)
            arch = by_elf_machine(machine) or DEFAULT
            return KernelImage(path, size, _banner(data), 0, data, arch=arch, format="vmlinux")
        linux = linux_section(f, path)
        start, length = linux if linux is not None else (0, size)
        f.seek(start)
        head = f.read(0x40)
        if is_zboot(head):
            offset, payload = struct.unpack_from("<II", head, 8)
            data = _decompress(f, start + offset, payload, path)
            return arm64_image(data, path, length, "zboot")
        if is_arm64_image(head):
            f.seek(start)
            return arm64_image(f.read(length), path, length, "Image")
        if head[:2] == GZIP_MAGIC and is_arm64_image(_decompress(f, start, length, path, 0x40)):
            return arm64_image(_decompress(f, start, length, path), path, length, "Image.gz")
        return _bzimage(f, start, length, path)


PE_MACHINES = {0x8664: X86_64, 0xAA64: AARCH64}  # IMAGE_FILE_MACHINE_AMD64, _ARM64


def kernel_arch(path: str) -> Arch | None:
    """The architecture the kernel at `path` is for, read from its headers (a gzip'ed Image
    is decompressed); None when it does not say (an s390 image, a file that is no kernel):
    the caller's --arch, or x86_64, then."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            f.seek(0)
            head = f.read(0x206)
            if head[:4] == ELF_MAGIC and len(head) > 20:
                (machine,) = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)
                return by_elf_machine(machine)
            linux = linux_section(f, path)
            if linux is not None:
                f.seek(linux[0])
                head = f.read(0x206)
            if is_zboot(head):  # the PE header's machine says for which
                (pe,) = struct.unpack_from("<I", head, 0x3C)
                f.seek((linux[0] if linux else 0) + pe + 4)
                (machine,) = struct.unpack("<H", f.read(2))
                return PE_MACHINES.get(machine)
            if is_arm64_image(head):
                return AARCH64
            if head[0x202:0x206] == b"HdrS":
                return X86_64
            if head[:2] == GZIP_MAGIC and size:
                return read_kernel(path).arch
    except (OSError, BadImage, struct.error):
        return None
    return None


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
