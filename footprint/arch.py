"""One record per architecture footprint boots or reads: QEMU's binary and devices, the
kernel image's header, the library directories and the struct page size (kunit's qemu_configs
are the model): x86_64, aarch64, ppc64le and s390x, one record each in ARCHES. Which one a
kernel is for is read from the kernel itself (model/kernel.py)."""

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
    kernel_header: BootHeader | None  # how the kernel's size and memory needs are read
    triplet: str  # Debian's multiarch triplet
    struct_page_bytes: int  # sizeof(struct page): the memmap's cost per page
    # QEMU's arguments that give the guest its probe_serial, writing to the chardev "probe"
    probe_device: tuple[str, ...] = ("-serial", "chardev:probe")
    page_size: int = 4096  # the kernel's page size unless its image says otherwise
    elf_machine: int = 0  # e_machine of its vmlinux
    debian_arch: str = ""  # Debian's architecture name (dpkg --print-architecture)
    # what makes the kernel print before its console driver binds (a death there is silent)
    early_console: str = ""

    @property
    def console_cmdline(self) -> str:
        """The console words of every command line footprint boots this architecture with."""
        return f"console={self.console} {self.early_console}".rstrip()

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
    elf_machine=62,
    debian_arch="amd64",
)

# virt has one PL011 (ttyAMA0, the console); the probe's port is a PCI 16550, which the 8250
# driver built into Debian's arm64 kernel names ttyS0 (virtio-serial's hvc needs the
# virtio_console module, which most images do not load before their init runs). The PL011
# console binds after the initramfs is unpacked: earlycon (the device tree's stdout-path) is
# what shows an unpack that runs out of memory, which otherwise ends the boot in silence.
AARCH64 = Arch(
    name="aarch64",
    qemu_binary="qemu-system-aarch64",
    qemu_package="qemu-system-arm",
    machine="virt",
    # pauth-impdef: QEMU's own pointer-authentication hash, several times cheaper under TCG
    # than the architected QARMA (the guest cannot tell).
    cpu_tcg="max,pauth-impdef=on",
    console="ttyAMA0",
    probe_serial="ttyS0",
    kernel_format="Image",
    kernel_header=None,  # the arm64 Image header: model/kernel.py
    triplet="aarch64-linux-gnu",
    struct_page_bytes=64,
    probe_device=("-device", "pci-serial,chardev=probe"),
    elf_machine=183,
    debian_arch="arm64",
    early_console="earlycon",
)

# pseries gives each -serial a spapr-vty: hvc0, hvc1.
PPC64LE = Arch(
    name="ppc64le",
    qemu_binary="qemu-system-ppc64",
    qemu_package="qemu-system-ppc",
    machine="pseries",
    cpu_tcg="power9",
    console="hvc0",
    probe_serial="hvc1",
    kernel_format="vmlinux",
    kernel_header=None,
    triplet="powerpc64le-linux-gnu",
    struct_page_bytes=64,
    page_size=65536,  # Debian's ppc64el kernels: CONFIG_PPC_64K_PAGES
    elf_machine=21,
    debian_arch="ppc64el",
)

# s390-ccw-virtio: the first -serial is the SCLP VT220 console (ttysclp0); the probe falls
# back to /dev/console where its port is missing.
S390X = Arch(
    name="s390x",
    qemu_binary="qemu-system-s390x",
    qemu_package="qemu-system-misc",
    machine="s390-ccw-virtio",
    cpu_tcg="max",
    console="ttysclp0",
    probe_serial="ttysclp1",
    kernel_format="image",
    kernel_header=None,
    triplet="s390x-linux-gnu",
    struct_page_bytes=64,
    elf_machine=22,
    debian_arch="s390x",
)

ARCHES: dict[str, Arch] = {a.name: a for a in (X86_64, AARCH64, PPC64LE, S390X)}
DEFAULT = X86_64  # where the kernel does not say (a bare vmlinux of another machine, none)


def by_name(name: str) -> Arch:
    """The record of `name` (uname -m's, or Debian's: arm64, amd64, ppc64el)."""
    for a in ARCHES.values():
        if name in (a.name, a.debian_arch):
            return a
    raise KeyError(name)


def by_elf_machine(machine: int) -> Arch | None:
    return next((a for a in ARCHES.values() if a.elf_machine == machine), None)
