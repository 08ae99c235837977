"""The field's other crashkernel= estimators, computed exactly as their tools compute them, for
the image and kernel footprint is given — so each can be judged beside footprint's prediction.

- kdumpctl (Fedora/RHEL): kernel + modules + 3 × compressed initrd + 16 MiB.
- kdump-config (Debian kdump-tools 1:1.10.9, `crashkernel_estimate` in /usr/sbin/kdump-config;
  1:1.8.1 of bookworm has none): 6 × du -sm vmlinuz + du -sm initrd + du -sm of the unpacked
  initrd + the first kernel's memory used early in boot − a CPU/RAM surplus, at least
  6 × vmlinuz + both initrd sizes + 32 MiB. All in whole MiB, as the shell computes them.
- kdumptool calibrate (openSUSE kdump 2.1.9, kdumptool/calibrate.cc): a run-time size from the
  constants of calibrate.conf (KERNEL_BASE, KERNEL_INIT, INIT_CACHED, PERCPU, USER_BASE,
  PAGESIZE, SIZEOFPAGE), grown for dirty pages, large hashes and the memmap, then + 30 % + 64 MiB.
  Its kernel constants come from a kernel profile's init-start snapshot of the same kernel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from footprint.units import MIB

if TYPE_CHECKING:
    from footprint.model import kernel_profile as kp
    from footprint.profile import Profile

KIB = 1024
KDUMPCTL_OVERHEAD = 16 * MIB


@dataclass(frozen=True)
class FirstKernel:
    """The crashing (first) kernel's machine, as the estimators that look at it see it."""

    cpus: int  # nproc
    memory_bytes: int  # its RAM (openSUSE's memtotal: the sum of System RAM ranges)
    meminfo: dict[str, int]  # /proc/meminfo early in boot, bytes (kdump-config's mem-<release>)
    meminfo_source: str  # where that snapshot was taken, in words


@dataclass(frozen=True)
class PeerTerm:
    name: str
    bytes: int  # may be negative (a surplus taken off)
    how: str


@dataclass(frozen=True)
class PeerEstimate:
    """One estimator's figure: bytes, or None with why it cannot be computed."""

    name: str
    version: str  # the tool version whose code this follows
    bytes: int | None
    terms: tuple[PeerTerm, ...]
    note: str


# -- kdumpctl -------------------------------------------------------------------------------
def kdumpctl_formula(kernel_bytes: int, modules_bytes: int, initrd_bytes: int) -> int:
    """kdumpctl's rough estimate: kernel + modules + 3 × compressed initrd + 16 MiB."""
    return kernel_bytes + modules_bytes + 3 * initrd_bytes + KDUMPCTL_OVERHEAD


def kdumpctl(profile: Profile) -> PeerEstimate:
    r = profile.reservation
    terms = (
        PeerTerm("kernel", r.kernel_bytes, "the kernel's PT_LOAD memory size"),
        PeerTerm("modules", r.modules_bytes, "every module file in the image"),
        PeerTerm("initrd", 3 * r.initrd_compressed_bytes, "3 × the compressed initrd"),
        PeerTerm("overhead", KDUMPCTL_OVERHEAD, "16 MiB"),
    )
    return PeerEstimate("kdumpctl", "", r.kdumpctl_formula_bytes, terms, "")


# -- Debian kdump-config ----------------------------------------------------------------------
KDUMP_CONFIG_VERSION = "kdump-tools 1:1.10.9"
VMLINUX_FACTOR = 6  # x86_64, i386, s390x (4 elsewhere, 2 on powerpc)
MIN_EXTRA_MIB = 32
CPU_BUCKETS_KIB = (5000, 3500, 2500)  # per CPU beyond the first: CPUs 1-32, 33-64, 65-
RAM_BUCKETS_KIB = (6000, 600)  # per GiB of RAM: GiB 1-32, 33-


def du_mib(page_rounded_bytes: int) -> int:
    """`du -sm`: the blocks a file (or tree) takes, rounded up to whole MiB."""
    return -(-page_rounded_bytes // MIB)


def _file_blocks(n: int) -> int:
    return -(-n // 4096) * 4096  # ext4's 4 KiB blocks, where /boot and /var/lib/kdump live


def cpumem_surplus_mib(cpus: int, memtotal_kib: int) -> int:
    """crashkernel_cpumem_surplus(): what the first kernel's extra CPUs and RAM used early in
    boot that the capture kernel (one CPU, less RAM) will not."""
    ncpus = cpus - 1
    ram_gib = memtotal_kib // 1048576 + 1
    b1, b2, b3 = min(ncpus, 32), min(max(ncpus - 32, 0), 32), max(ncpus - 64, 0)
    cpu = b1 * CPU_BUCKETS_KIB[0] + b2 * CPU_BUCKETS_KIB[1] + b3 * CPU_BUCKETS_KIB[2]
    ram = min(ram_gib, 32) * RAM_BUCKETS_KIB[0] + max(ram_gib - 32, 0) * RAM_BUCKETS_KIB[1]
    return (cpu + ram) // 1024


def early_used_mib(meminfo: dict[str, int]) -> int:
    """MemTotal − MemFree − Buffers − Cached − SReclaimable − Hugetlb, in MiB (rounded down
    from KiB, as the shell does)."""
    kib = {k: v // KIB for k, v in meminfo.items()}
    free = sum(kib.get(k, 0) for k in ("MemFree", "Buffers", "Cached", "SReclaimable"))
    return (kib.get("MemTotal", 0) - free - kib.get("Hugetlb", 0)) // 1024


def _tmpfs_rootfs(profile: Profile) -> int:
    """The page-rounded rootfs with only long symlinks a page (tmpfs), as these estimators
    have always been given it; profiles saved before the figure have it as rootfs_bytes."""
    return profile.boot.rootfs_tmpfs_bytes or profile.boot.rootfs_bytes


def kdump_config(profile: Profile, kernel_file_bytes: int, first: FirstKernel) -> PeerEstimate:
    """kdump-config's `crashkernel suggested size` for this image as the kdump initrd."""
    vmlinux = VMLINUX_FACTOR * du_mib(_file_blocks(kernel_file_bytes))
    initrd = du_mib(_file_blocks(profile.image.bytes))
    # size_initrd.img-<release>: `du -sm` of mkinitramfs' kept tree under /tmp — a tmpfs on
    # trixie, where directories and short symlinks take no block: the rootfs as tmpfs holds it.
    unpacked = du_mib(_tmpfs_rootfs(profile))
    early = early_used_mib(first.meminfo)
    surplus = cpumem_surplus_mib(first.cpus, first.meminfo.get("MemTotal", 0) // KIB)
    estimate = vmlinux + initrd + unpacked + early - surplus
    floor = vmlinux + initrd + unpacked + MIN_EXTRA_MIB
    terms = (
        PeerTerm("vmlinuz", vmlinux * MIB, f"{VMLINUX_FACTOR} × du -sm of the bzImage"),
        PeerTerm("initrd", initrd * MIB, "du -sm of the initrd"),
        PeerTerm("unpacked initrd", unpacked * MIB, "du -sm of the unpacked tree"),
        PeerTerm("early-used", early * MIB, f"first kernel's used memory ({first.meminfo_source})"),
        PeerTerm("surplus", -surplus * MIB, f"{first.cpus} CPUs and its RAM, by buckets"),
    )
    note = ""
    if estimate < floor:
        note = f"below its minimum: raised to 6 × vmlinuz + initrd + unpacked + {MIN_EXTRA_MIB} MiB"
        estimate = floor
    return PeerEstimate("kdump-config", KDUMP_CONFIG_VERSION, estimate * MIB, terms, note)


# -- openSUSE kdumptool calibrate -----------------------------------------------------------
KDUMPTOOL_VERSION = "openSUSE kdump 2.1.9"
ADD_RESERVE_PCT = 30
ADD_RESERVE_KIB = 64 * 1024
DEF_FRAMEBUFFER_KIB = 768 * 4  # no framebuffer readable: 1024x768 at 32 bpp
DIRTY_RATIO = 20
BUF_PER_DIRTY_MB = 64
KERNEL_HASH_PER_MB = 232 * 8  # sizeof(long) on 64-bit
MAX_BITMAP_KIB = 32 * 1024
PERCPU_EXTRA_KIB = 50 * 2 + 128 + 5  # thread footprint ×2, makedumpfile's per-CPU buffers
SWIOTLB_KIB = 64 * 1024


@dataclass(frozen=True)
class CalibrateConf:
    """calibrate.conf's constants, KiB (PAGESIZE and SIZEOFPAGE in bytes)."""

    kernel_base: int
    kernel_init: int
    init_cached: int
    percpu: int
    user_base: int
    pagesize: int
    sizeof_page: int
    where: tuple[tuple[str, str], ...]  # (constant, where its value came from)


def calibrate_conf(profile: Profile, kernel: kp.KernelProfile) -> CalibrateConf | None:
    """The constants for this image on this kernel: the kernel's from the kernel profile's
    init-start snapshot (measured as openSUSE's run-qemu.py does), the initramfs' from the
    image. None when the kernel profile has no snapshot (made before it had one)."""
    snap = kernel.snapshot
    if snap is None:
        return None
    page = profile.basis.page_size
    total_kib = snap.memory_bytes // KIB
    mi = {k: v // KIB for k, v in snap.meminfo.items()}
    pages = -(-total_kib // (page // KIB))
    memmap_kib = -(-pages * snap.sizeof_page // page) * (page // KIB)
    kernel_base = total_kib - mi["MemFree"] - mi["Cached"] - memmap_kib - mi["Percpu"]
    return CalibrateConf(
        kernel_base,
        snap.kernel_freed_bytes // KIB + profile.reservation.initrd_compressed_bytes // KIB,
        _tmpfs_rootfs(profile) // KIB,
        mi["Percpu"] // snap.cpus,
        snap.user_bytes // KIB,
        page,
        snap.sizeof_page,
        (
            ("KERNEL_BASE", "kernel profile: TOTAL − MemFree − Cached − memmap − Percpu at init"),
            ("KERNEL_INIT", "kernel profile: init memory freed after unpack; + the image's initrd"),
            ("INIT_CACHED", "the image: its page-rounded unpacked rootfs"),
            ("PERCPU", "kernel profile: Percpu at init / CPUs"),
            ("USER_BASE", "kernel profile: the minimal initrd's userspace at init (busybox)"),
            ("PAGESIZE, SIZEOFPAGE", "the architecture record (x86-64: 4096, 64)"),
        ),
    )


def kdumptool_calibrate(
    profile: Profile, kernel: kp.KernelProfile, first: FirstKernel, cpus: int = 1
) -> PeerEstimate:
    """`kdumptool calibrate`'s High+Low for this image (KDUMP_CPUS=cpus, a local file dump
    with makedumpfile: no network, no LUKS), on a first kernel with `first.memory_bytes`."""
    conf = calibrate_conf(profile, kernel)
    if conf is None:
        return PeerEstimate(
            "kdumptool calibrate",
            KDUMPTOOL_VERSION,
            None,
            (),
            "the kernel profile has no init-start snapshot (made by an older calibrate-kernel)",
        )
    memtotal = -(-first.memory_bytes // KIB)
    boot = conf.kernel_base + conf.kernel_init + conf.init_cached
    req = conf.kernel_base + conf.init_cached + 2 * DEF_FRAMEBUFFER_KIB
    percpu = (conf.percpu + PERCPU_EXTRA_KIB + 3 * conf.pagesize // KIB) * cpus
    bitmap = min(-(-(memtotal // conf.pagesize) // 4), MAX_BITMAP_KIB)
    user = conf.user_base + bitmap + 96 * -(-memtotal // (1 << 27))
    base = req + percpu + user
    req = base * 102400 // (102400 - DIRTY_RATIO * 1024 - DIRTY_RATIO * BUF_PER_DIRTY_MB)
    dirty = req
    req = req * 1048576 // (1048576 - KERNEL_HASH_PER_MB)
    hashes = req
    grown = req * conf.pagesize // (conf.pagesize - conf.sizeof_page)
    req = req + (grown - req) // conf.sizeof_page * conf.sizeof_page
    runtime = req
    req = max(req, boot)
    total = req * (100 + ADD_RESERVE_PCT) // 100 + ADD_RESERVE_KIB
    # x86-64: the area is found from the top of RAM down; above 4 GiB it needs SWIOTLB.
    if first.memory_bytes > 4 << 30:
        total += SWIOTLB_KIB
    terms = (
        PeerTerm("kernel base + initramfs", (conf.kernel_base + conf.init_cached) * KIB, ""),
        PeerTerm("framebuffers", 2 * DEF_FRAMEBUFFER_KIB * KIB, "2 × 1024x768x32"),
        PeerTerm("per-CPU", percpu * KIB, f"{cpus} CPU(s)"),
        PeerTerm("userspace + bitmap", user * KIB, "USER_BASE + makedumpfile's bitmap"),
        PeerTerm("dirty pages and I/O", (dirty - base) * KIB, "20 % dirty ratio"),
        PeerTerm("large hashes", (hashes - dirty) * KIB, ""),
        PeerTerm("memmap", (runtime - hashes) * KIB, "struct page of it all"),
        PeerTerm("boot floor", max(0, boot - runtime) * KIB, "KERNEL_BASE + KERNEL_INIT + INIT"),
        PeerTerm("margin", (total - req) * KIB, f"{ADD_RESERVE_PCT} % + 64 MiB"),
    )
    note = "; ".join(f"{k}: {v}" for k, v in conf.where)
    mib = -(-total // 1024)  # High and Low are printed rounded up to MiB
    return PeerEstimate("kdumptool calibrate", KDUMPTOOL_VERSION, mib * MIB, terms, note)
