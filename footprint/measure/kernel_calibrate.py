"""`calibrate-kernel`: one kernel's runtime terms, measured with minimal initrds footprint
writes itself (the host's static busybox, an init that loads modules and says it is ready).

Minima, each a bisection to the resolution (bounds from the static model, then from the
minima already known, so each slope costs about three boots): the minimal initrd by direct
boot; with 64 MiB more rootfs (zeros, gzip: unpacked, hardly held); with 64 MiB more initrd
held (random bytes, uncompressed: held and unpacked); with a known set of real modules
loaded by insmod; with two CPUs; and under a real kexec -p capture, with two sizes of the
crashing kernel's RAM. The per-entry term is a pair at a finer resolution: the minimal initrd
again, and with 50,000 more empty files (gzip). The terms are differences of these minima.
"""

from __future__ import annotations

import gzip
import os
import re
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Literal

from footprint import __version__, lifetime
from footprint.arch import DEFAULT as DEFAULT_ARCH
from footprint.errors import BadImage, EnvironmentUnavailable, UsageError
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.measure.backend import Backend, RunResult
from footprint.measure.bisect import Bisection, Trial, bisect, bisect_around
from footprint.measure.kdump import FIRST_KERNEL_MIB, KdumpBackend, static_busybox
from footprint.measure.qemu import QemuBackend, QemuOptions
from footprint.model import kernel_profile as kp
from footprint.model.kernel import KernelImage, build_id, read_kernel
from footprint.schemas import SCHEMA_VERSION
from footprint.units import MIB, page_round

READY = "footprint-kernel: ready"
INSMOD_FAILED = re.compile(r"footprint-kernel: insmod (\S+) failed")
INIT = f"""#!/bin/sh
for m in /m/*.ko; do
  [ -e "$m" ] || continue
  insmod "$m" || {{ echo "footprint-kernel: insmod $m failed"; exit 1; }}
done
echo "{READY}"
exec sleep 100000
"""
APPLETS = ("sh", "mount", "sleep", "insmod", "echo", "cat")
# Large modules of every distribution kernel, none of which needs a device to load; their
# dependencies come from modules.dep. crc32c first: libcrc32c asks the crypto API for it.
MODULES = ("crc32c_generic", "xfs", "btrfs", "amdgpu")
DATA_BYTES = 64 * MIB
# Empty files, in directories of ENTRIES_PER_DIR: each is an inode and a dentry in rootfs and
# nothing else, so the pair's difference over their count is the per-entry cost, to 2 x
# ENTRIES_RESOLUTION / ENTRIES (42 bytes).
ENTRIES = 50_000
ENTRIES_PER_DIR = 1000
ENTRIES_RESOLUTION = 1 * MIB
ENTRY_GUESS = 1024  # bytes: only where the bisection starts (struct inode + dentry + slack)
SNAPSHOT_MIB, SNAPSHOT_CPUS = 1024, 2  # openSUSE's run-qemu.py: TOTAL_RAM 1 GiB, NUMCPUS 2
UNPACK_STARTS = re.compile(r"Trying to unpack rootfs image|Unpacking initramfs")
FREEING = re.compile(r"Freeing (.*) memory: (\d+)K")
SECOND_FIRST_KERNEL_MIB = FIRST_KERNEL_MIB + 8192


@dataclass(frozen=True)
class Request:
    kernel: str
    modules_dir: str | None = None  # default: /lib/modules/<release>
    modules: tuple[str, ...] = MODULES
    resolution: int = 4 * MIB
    accel: str = "auto"
    timeout: float = 120.0
    data_bytes: int = DATA_BYTES
    entries: int = ENTRIES  # 0: no per-entry term
    entries_resolution: int = ENTRIES_RESOLUTION


@dataclass(frozen=True)
class Initrd:
    path: str
    initrd_bytes: int
    rootfs_bytes: int
    modules_bytes: int
    modules: tuple[str, ...]
    entries: int  # inodes the unpack creates (the root is not one)


def module_set(modules_dir: str, names: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, path) of `names` and their dependencies, in an order insmod can load them."""
    dep_file = os.path.join(modules_dir, "modules.dep")
    try:
        with open(dep_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise EnvironmentUnavailable(
            f"cannot read {dep_file}: {e.strerror} — install the kernel's modules (Debian: "
            "its linux-image package) or give --modules-dir"
        ) from None
    deps: dict[str, list[str]] = {}
    for line in lines:
        path, _, rest = line.partition(":")
        deps[path] = rest.split()

    def name_of(path: str) -> str:
        return os.path.basename(path).split(".ko", 1)[0].replace("-", "_")

    by_name = {name_of(p): p for p in deps}
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for d in reversed(deps.get(path, [])):  # modprobe loads the list from its end
            visit(d)
        order.append(path)

    for n in names:
        found = by_name.get(n.replace("-", "_"))
        if found is None:
            raise UsageError(f"module {n} is not in {dep_file}")
        visit(found)
    out = []
    for path in order:
        if not path.endswith(".ko"):
            raise UsageError(f"{path} is compressed: busybox insmod loads plain .ko files only")
        out.append((name_of(path), os.path.join(modules_dir, path)))
    return out


def minimal_initrd(
    directory: str,
    name: str,
    busybox: str,
    modules: list[tuple[str, str]] = (),  # type: ignore[assignment]
    rootfs_data: int = 0,
    held_data: int = 0,
    page_size: int = 4096,
    entries: int = 0,
) -> Initrd:
    """A newc initrd: busybox, its applets, the init, the modules in /m; `rootfs_data` bytes
    of zeros in a gzip member (unpacked, hardly held), `held_data` random bytes uncompressed
    (held and unpacked), about `entries` more inodes — empty files in directories of
    ENTRIES_PER_DIR under /e — in another gzip member. Its rootfs counts a page per symlink:
    the command line has root=, so rootfs is ramfs (ramfs_symlink -> page_symlink)."""
    d, f, link = stat.S_IFDIR | 0o755, stat.S_IFREG | 0o755, stat.S_IFLNK | 0o777
    with open(busybox, "rb") as src:
        bb = src.read()
    parts = [newc_entry(n, d) for n in (".", "bin", "proc", "dev", "sys", "m", "data")]
    parts.append(newc_entry("bin/busybox", f, bb))
    parts += [newc_entry(f"bin/{a}", link, b"busybox") for a in APPLETS]
    parts.append(newc_entry("init", f, INIT.encode()))
    rootfs = page_round(len(bb), page_size) + page_round(len(INIT), page_size)
    rootfs += len(APPLETS) * page_size
    created = len(parts) - 1  # every entry so far but "."
    mod_bytes = 0
    for i, (mod, path) in enumerate(modules):
        with open(path, "rb") as src:
            data = src.read()
        parts.append(newc_entry(f"m/{i:03d}-{mod}.ko", stat.S_IFREG | 0o644, data))
        mod_bytes += len(data)
        rootfs += page_round(len(data), page_size)
        created += 1
    if held_data:
        parts.append(newc_entry("data/random", stat.S_IFREG | 0o644, os.urandom(held_data)))
        rootfs += page_round(held_data, page_size)
        created += 1
    parts.append(newc_trailer())
    blob = b"".join(parts)
    if rootfs_data:
        member = newc_entry("data/zeros", stat.S_IFREG | 0o644, bytes(rootfs_data))
        blob += b"\0" * (-len(blob) % 4) + gzip.compress(member + newc_trailer(), 1)
        rootfs += page_round(rootfs_data, page_size)
        created += 1
    if entries:
        made = [newc_entry("e", d)]
        for i in range(entries):
            if i % ENTRIES_PER_DIR == 0:
                made.append(newc_entry(f"e/{i // ENTRIES_PER_DIR:03d}", d))
            made.append(newc_entry(f"e/{i // ENTRIES_PER_DIR:03d}/{i:05d}", stat.S_IFREG | 0o644))
        made.append(newc_trailer())
        blob += b"\0" * (-len(blob) % 4) + gzip.compress(b"".join(made), 6)
        created += len(made) - 1
    out = os.path.join(directory, f"{name}.img")
    with open(out, "wb") as dst:
        dst.write(blob)
    return Initrd(out, len(blob), rootfs, mod_bytes, tuple(m for m, _ in modules), created)


Progress = Callable[[str, Trial], None]


def calibrate_kernel(request: Request, progress: Progress | None = None) -> kp.KernelProfile:
    """Measure the kernel's runtime terms; the document keeps every trial."""
    started = time.monotonic()
    kimage = _kernel(request.kernel)
    release = kimage.version.split(" ", 1)[0]
    modules_dir = request.modules_dir or f"/lib/modules/{release}"
    mods = module_set(modules_dir, request.modules)
    busybox = static_busybox()
    res = request.resolution
    options = QemuOptions(
        request.kernel, until=READY, timeout=request.timeout, accel=request.accel, interval=1.0
    )
    minima: list[kp.Minimum] = []
    boots = [0]
    accel = [""]

    with lifetime.temp_dir("kernel") as tmp:

        def measure(
            name: str,
            backend: Backend,
            initrd: Initrd,
            around: int | None = None,
            bounds: tuple[int, int] | None = None,
            cpus: int = 1,
            first_kernel: int = 0,
            resolution: int = res,
        ) -> kp.Minimum:
            def run(memory: int) -> RunResult:
                r = backend.run(initrd.path, memory)
                boots[0] += 1
                if r.qemu is not None:
                    accel[0] = r.qemu.accel
                failed = INSMOD_FAILED.search(r.console)
                if failed and "Out of memory" not in r.console:
                    raise EnvironmentUnavailable(
                        f"{request.kernel}: insmod {failed.group(1)} failed with "
                        f"{memory >> 20} MiB (not for lack of memory) — choose other modules"
                    )
                return r

            def told(t: Trial, lo: int, hi: int) -> None:
                if progress is not None:
                    progress(name, t)

            b: Bisection
            if around is not None:
                b, _ = bisect_around(run, around, resolution, 2 * resolution, progress=told)
            else:
                assert bounds is not None
                b = bisect(
                    run, bounds[0], bounds[1], resolution, max_high=4 * bounds[1], progress=told
                )
            if b.minimum_bytes is None:
                last = b.trials[-1] if b.trials else None
                raise EnvironmentUnavailable(
                    f"{request.kernel} did not boot footprint's minimal initrd ({name}) even "
                    f"with {b.high_bytes >> 20} MiB" + (f": {last.outcome}" if last else "")
                )
            m = kp.Minimum(
                name,
                "kdump" if backend.name == "kdump" else "qemu",
                b.minimum_bytes,
                resolution,
                initrd.initrd_bytes,
                initrd.rootfs_bytes,
                initrd.modules_bytes,
                initrd.modules,
                cpus,
                first_kernel,
                tuple(
                    kp.KernelTrial(
                        t.limit_bytes, str(t.outcome), t.succeeded, round(t.duration_s, 2)
                    )
                    for t in b.trials
                ),
                initrd.entries,
            )
            minima.append(m)
            return m

        direct = QemuBackend(options)
        small = minimal_initrd(tmp, "base", busybox)
        floor = _floor(kimage, small)
        base = measure("direct_base", direct, small, bounds=(floor, 2 * floor))
        grow = 1 + 1 / 63  # struct page: the minimum grows by 64/4032 of what it holds
        data = request.data_bytes
        entry_pair: tuple[kp.Minimum, kp.Minimum] | None = None
        if request.entries:
            fine = request.entries_resolution
            # the minimal initrd again, to the finer resolution: its minimum is within one
            # coarse resolution below the one known
            e_base = measure(
                "entries_base", direct, small, around=base.minimum_bytes, resolution=fine
            )
            many = minimal_initrd(tmp, "entries", busybox, entries=request.entries)
            guess = e_base.minimum_bytes + int((many.entries - small.entries) * ENTRY_GUESS * grow)
            e_many = measure("entries", direct, many, around=guess, resolution=fine)
            os.unlink(many.path)
            entry_pair = (e_base, e_many)
        big = minimal_initrd(tmp, "rootfs", busybox, rootfs_data=data)
        rootfs = measure("rootfs", direct, big, around=base.minimum_bytes + int(data * grow))
        os.unlink(big.path)
        held = minimal_initrd(tmp, "held", busybox, held_data=data)
        held_m = measure(
            "initrd_held", direct, held, around=base.minimum_bytes + int(2 * data * grow)
        )
        os.unlink(held.path)
        loaded = minimal_initrd(tmp, "modules", busybox, mods)
        mods_m = measure(
            "modules",
            direct,
            loaded,
            around=base.minimum_bytes + int(2 * loaded.modules_bytes * grow),
        )
        os.unlink(loaded.path)
        two = QemuBackend(replace(options, cpus=2, append="nr_cpus=2"))
        cpu_m = measure("cpu", two, small, around=base.minimum_bytes, cpus=2)
        kdump = KdumpBackend(options)
        k_base = measure(
            "kdump_base",
            kdump,
            small,
            around=base.minimum_bytes,
            first_kernel=FIRST_KERNEL_MIB * MIB,
        )
        k_big = KdumpBackend(options, SECOND_FIRST_KERNEL_MIB)
        k_ram = measure(
            "kdump_first_kernel_ram",
            k_big,
            small,
            around=k_base.minimum_bytes,
            first_kernel=SECOND_FIRST_KERNEL_MIB * MIB,
        )
        seen = ram_seen(direct, kdump, small, k_base.minimum_bytes + 2 * res)
        boots[0] += 2
        smp = replace(options, cpus=SNAPSHOT_CPUS, append=f"nr_cpus={SNAPSHOT_CPUS}")
        snap = snapshot(smp, small)
        boots[0] += 1
    terms = (*derive(base, rootfs, held_m, mods_m, cpu_m, k_base, k_ram), ram_loss(seen))
    if entry_pair is not None:
        terms = (*terms, entry_term(*entry_pair, terms))
    bid, note = build_id(kimage)
    return kp.KernelProfile(
        SCHEMA_VERSION,
        kp.KIND,
        f"footprint {__version__}",
        kp.KernelRef(request.kernel, release, kimage.version, bid, note, kimage.file_bytes),
        accel[0],
        res,
        terms,
        tuple(minima),
        boots[0],
        round(time.monotonic() - started, 1),
        datetime.now(timezone.utc).isoformat(timespec="seconds"),
        snap,
        seen,
    )


def ram_seen(
    direct: Backend, kdump: Backend, initrd: Initrd, memory: int
) -> tuple[kp.RamSeen, kp.RamSeen]:
    """MemTotal of the minimal initrd booted directly and as a kexec -p capture in the same
    memory: what the capture kernel does not get of its reservation, free of the bisections'
    rounding (each minimum is only known to a resolution)."""
    out = []
    for name, backend in (("direct_ram", direct), ("kdump_ram", kdump)):
        r = backend.run(initrd.path, memory)
        samples = r.qemu.samples if r.qemu is not None else ()
        if not r.succeeded or not samples:
            raise EnvironmentUnavailable(
                f"footprint's minimal initrd did not boot ({name}) in {memory >> 20} MiB: "
                f"{r.outcome}: {r.detail}"
            )
        kind: Literal["qemu", "kdump"] = "kdump" if backend.name == "kdump" else "qemu"
        out.append(kp.RamSeen(name, kind, memory, samples[0].meminfo.get("MemTotal", 0)))
    return out[0], out[1]


def ram_loss(seen: tuple[kp.RamSeen, kp.RamSeen]) -> kp.RuntimeTerm:
    direct, kdump = seen
    loss = direct.memtotal_bytes - kdump.memtotal_bytes
    return kp.RuntimeTerm(
        kp.KDUMP_RAM_LOSS,
        float(loss),
        "bytes",
        float(4096),
        (direct.name, kdump.name),
        f"MemTotal of a direct boot less that of a kexec -p capture, both in "
        f"{direct.memory_bytes >> 20} MiB: the reservation the capture kernel does not get "
        "as RAM (kexec's segments, the crash kernel's memory map)",
    )


def entry_term(
    base: kp.Minimum, many: kp.Minimum, terms: tuple[kp.RuntimeTerm, ...]
) -> kp.RuntimeTerm:
    """Bytes per inode the unpack creates (its inode and dentry, ramfs): the pair's difference,
    less what the rootfs and held slopes explain of their initrds' difference, over the
    difference of their entries."""
    slopes = {t.name: t.value for t in terms}
    d_entries = many.entries - base.entries
    explained = slopes[kp.ROOTFS] * (many.rootfs_bytes - base.rootfs_bytes) + slopes[
        kp.INITRD_HELD
    ] * (many.initrd_bytes - base.initrd_bytes)
    res = max(base.resolution_bytes, many.resolution_bytes)
    return kp.RuntimeTerm(
        kp.ENTRIES,
        (many.minimum_bytes - base.minimum_bytes - explained) / d_entries,
        "bytes per inode created in rootfs",
        2 * res / d_entries,
        (base.name, many.name),
        f"{d_entries} more entries (empty files in directories of {ENTRIES_PER_DIR}, gzip), "
        f"both minima to {res >> 20} MiB, less the held term of their "
        f"{(many.initrd_bytes - base.initrd_bytes) / MIB:.2f} MiB of initrd",
    )


def snapshot(options: QemuOptions, initrd: Initrd) -> kp.InitSnapshot:
    """One boot of the minimal initrd in SNAPSHOT_MIB: its meminfo as init starts, and what the
    kernel frees once the unpack has begun (the initrd, its init sections)."""
    r = QemuBackend(options).run(initrd.path, SNAPSHOT_MIB * MIB)
    samples = r.qemu.samples if r.qemu is not None else ()
    if not r.succeeded or not samples:
        raise EnvironmentUnavailable(
            f"{options.kernel} did not boot footprint's minimal initrd in {SNAPSHOT_MIB} MiB "
            f"with the probe ({r.outcome}: {r.detail})"
        )
    kernel_freed = initrd_freed = 0
    unpacking = False
    for line in r.console.splitlines():
        if UNPACK_STARTS.search(line):
            unpacking = True
        found = FREEING.search(line)
        if found and unpacking:
            if found.group(1) == "initrd":
                initrd_freed += int(found.group(2)) * 1024
            else:
                kernel_freed += int(found.group(2)) * 1024
    first = samples[0]
    return kp.InitSnapshot(
        SNAPSHOT_MIB * MIB,
        options.cpus,
        dict(first.meminfo),
        kernel_freed,
        initrd_freed,
        sum(p.hwm_bytes for p in first.processes),
        DEFAULT_ARCH.struct_page_bytes,
        round(r.duration_s, 2),
    )


def derive(
    base: kp.Minimum,
    rootfs: kp.Minimum,
    held: kp.Minimum,
    mods: kp.Minimum,
    cpu: kp.Minimum,
    k_base: kp.Minimum,
    k_ram: kp.Minimum,
) -> tuple[kp.RuntimeTerm, ...]:
    """The runtime terms from the measured minima: each slope is a difference of minima over
    the difference of what the initrds (or machines) held, less what the slopes found before
    it explain."""
    res = base.resolution_bytes
    b = base.minimum_bytes

    def slope(m: kp.Minimum, dx: float, explained: float = 0.0) -> tuple[float, float]:
        return (m.minimum_bytes - b - explained) / dx, 2 * res / dx

    d_root = rootfs.rootfs_bytes - base.rootfs_bytes
    s_root, u_root = slope(rootfs, d_root)
    d_held = held.initrd_bytes - base.initrd_bytes
    s_held, u_held = slope(held, d_held, s_root * (held.rootfs_bytes - base.rootfs_bytes))
    d_mod = mods.modules_bytes
    s_mod, u_mod = slope(
        mods,
        d_mod,
        s_root * (mods.rootfs_bytes - base.rootfs_bytes)
        + s_held * (mods.initrd_bytes - base.initrd_bytes),
    )
    d_ram = k_ram.first_kernel_bytes - k_base.first_kernel_bytes
    s_ram = (k_ram.minimum_bytes - k_base.minimum_bytes) / d_ram
    return (
        kp.RuntimeTerm(
            kp.DIRECT_BASE,
            float(b),
            "bytes",
            float(res),
            (base.name,),
            "the smallest -m the minimal initrd boots in: the kernel, its early allocations, "
            "slab, per-CPU areas and page tables of one CPU, struct page, a busybox shell",
        ),
        kp.RuntimeTerm(
            kp.KDUMP_BASE,
            float(k_base.minimum_bytes),
            "bytes",
            float(res),
            (k_base.name,),
            "the smallest crashkernel= the minimal initrd's kexec -p capture boots in, with "
            f"a {k_base.first_kernel_bytes >> 20} MiB first kernel",
        ),
        kp.RuntimeTerm(
            kp.ROOTFS,
            s_root,
            "bytes per byte of page-rounded rootfs",
            u_root,
            (base.name, rootfs.name),
            f"{d_root >> 20} MiB more rootfs (zeros, gzip): the pages and their struct page",
        ),
        kp.RuntimeTerm(
            kp.INITRD_HELD,
            s_held,
            "bytes per byte of initrd held until unpacked",
            u_held,
            (base.name, rootfs.name, held.name),
            f"{d_held >> 20} MiB more initrd (random, uncompressed), less its rootfs",
        ),
        kp.RuntimeTerm(
            kp.MODULES,
            s_mod,
            "bytes per byte of module file loaded",
            u_mod,
            (base.name, rootfs.name, held.name, mods.name),
            f"insmod of {len(mods.modules)} modules ({d_mod / MIB:.1f} MiB of .ko: "
            f"{', '.join(mods.modules)}), less their files' rootfs and held terms",
        ),
        kp.RuntimeTerm(
            kp.CPU,
            float(cpu.minimum_bytes - b),
            "bytes per CPU",
            float(2 * res),
            (base.name, cpu.name),
            "-smp 2 nr_cpus=2 against one CPU (kdump command lines boot nr_cpus=1)",
        ),
        kp.RuntimeTerm(
            kp.FIRST_KERNEL_RAM,
            s_ram,
            "bytes per byte of first-kernel RAM",
            2 * res / d_ram,
            (k_base.name, k_ram.name),
            f"kexec -p captures of a {k_base.first_kernel_bytes >> 20} and a "
            f"{k_ram.first_kernel_bytes >> 20} MiB first kernel (the elfcorehdr describes it)",
        ),
    )


def _kernel(path: str) -> KernelImage:
    try:
        k = read_kernel(path)
    except BadImage as e:
        raise BadImage(f"{e.detail} — calibrate-kernel needs a bzImage (or a UKI)") from None
    if not k.version:
        raise BadImage(f"{path} has no kernel version string: not a bzImage footprint can boot")
    return k


def _floor(kimage: KernelImage, initrd: Initrd) -> int:
    """A lower bound for the bisection: the kernel's memory at start and the initrd, twice."""
    return max(32 * MIB, kimage.init_size + 2 * initrd.initrd_bytes)
