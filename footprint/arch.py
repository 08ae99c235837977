"""One record per architecture footprint boots or reads: QEMU's binary and devices, the
kernel image's header, the library directories and the struct page size (kunit's qemu_configs
are the model). Only x86_64 now: aarch64 is one more record in ARCHES."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BootHeader:
    """Where a kernel image's boot header keeps what footprint reads (x86: the bzImage boot
    protocol, Documentation/arch/x86/boot.rst; offsets from the start of the image)."""

    magic: bytes  # at magic_offset
    magic_offset: int
    version_offset: int  # u16 boot protocol version
    setup_sects_offset: int  # u8, 0 meaning 4
    kernel_version_offset: int  # u16 pointer to the version string, minus 0x200
    payload_offset: int  # u32 offset, u32 length of the compressed kernel (from payload_since)
    payload_since: int
    init_size_offset: int  # u32 memory the kernel needs to start (from init_size_since)
    init_size_since: int
    length: int  # bytes to read to see all of the above


@dataclass(frozen=True)
class Arch:
    name: str  # as `uname -m` says it
    qemu_binary: str
    qemu_package: str  # the Debian package that provides qemu_binary
    machine: str  # QEMU's -machine
    cpu_tcg: str  # QEMU's -cpu under TCG (KVM passes the host's)
    console: str  # the serial device the kernel's console is on (console=)
    probe_serial: str  # the second serial device, for the probe's samples
    kernel_format: str  # what QEMU's -kernel takes
    kernel_header: BootHeader  # how the kernel's size and memory needs are read
    triplet: str  # Debian's multiarch triplet
    struct_page_bytes: int  # sizeof(struct page): the memmap's cost per page

    @property
    def lib_dir(self) -> str:
        """Where ld.so looks first, relative to the root (no leading slash)."""
        return f"lib/{self.triplet}"


BZIMAGE = BootHeader(
    magic=b"HdrS",
    magic_offset=0x202,
    version_offset=0x206,
    setup_sects_offset=0x1F1,
    kernel_version_offset=0x20E,
    payload_offset=0x248,
    payload_since=0x208,
    init_size_offset=0x260,
    init_size_since=0x20A,
    length=0x270,
)

X86_64 = Arch(
    name="x86_64",
    qemu_binary="qemu-system-x86_64",
    qemu_package="qemu-system-x86",
    machine="pc",
    cpu_tcg="max",
    console="ttyS0",
    probe_serial="ttyS1",
    kernel_format="bzImage",
    kernel_header=BZIMAGE,
    triplet="x86_64-linux-gnu",
    struct_page_bytes=64,
)

ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64,)}
DEFAULT = X86_64  # the capture kernel's architecture until the command line can choose one
