"""The `footprint` command: parses options, calls the core, picks a renderer, maps errors.

main() is the only place that exits. Core modules are imported inside each command so that
a command never pays for what it does not use (lief is ~0.3 s to import).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from footprint import __version__
from footprint.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EnvironmentUnavailable,
    FootprintError,
    Terminated,
)

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok
  1  negative verdict (a budget exceeded, a run that failed under its limit)
  2  usage error
  3  bad or unsupported image
  4  this machine cannot do what was asked (not root, no cgroup, no qemu, no kernel)
  70 internal error (a bug in footprint: please report it)
  130/143 interrupted (SIGINT) / terminated (SIGTERM)
"""


def _emit(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as e:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere
        if not isinstance(e, BrokenPipeError):  # `footprint inspect … | head` is fine
            # a full disk, a closed descriptor: say so, in one line
            raise EnvironmentUnavailable(f"cannot write the output: {e.strerror or e}") from None


def _emit_json(doc: dict[str, Any]) -> None:
    _emit(json.dumps(doc, indent=2) + "\n")


class FootprintGroup(click.Group):
    """Maps every outcome of a command to its documented exit code, also under CliRunner."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FootprintError as e:
            click.echo(f"footprint: error: {e}", err=True)
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("footprint: interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as e:
            click.echo("footprint: terminated", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: one line by default, the traceback on request
            if os.environ.get("FOOTPRINT_DEBUG"):
                raise
            click.echo(
                f"footprint: internal error: {type(e).__name__}: {e} (set "
                "FOOTPRINT_DEBUG=1 for the traceback, and please report it)",
                err=True,
            )
            ctx.exit(EXIT_INTERNAL)


@click.group(
    cls=FootprintGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="footprint")
def cli() -> None:
    """What an initramfs holds and what it costs a kdump crashkernel= reservation."""


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document (schema_version 1).")
@click.option("--files", is_flag=True, help="List every path of the unpacked tree.")
@click.option(
    "--sort",
    type=click.Choice(["image", "name", "size"]),
    default="image",
    show_default=True,
    help="Order of the --files listing.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=512),
    default=4096,
    show_default=True,
    help="Page size of the capture kernel, for page-rounded costs.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many of the largest files to show.",
)
def inspect(image: str, as_json: bool, files: bool, sort: str, page_size: int, top: int) -> None:
    """Read IMAGE as the kernel would: its segments, its tree, and what unpacking it costs.

    IMAGE is an initramfs (any mix of plain cpio and gzip, bzip2, lzma, xz, lzo, lz4 or
    zstd members) or a unified kernel image.
    """
    from footprint.image.reader import scan
    from footprint.image.summary import summarize
    from footprint.report import inspect as render

    if page_size & (page_size - 1):
        raise click.BadParameter("must be a power of two", param_hint="--page-size")
    inv = scan(image)
    summary = summarize(inv, page_size, top)
    rows = render.file_rows(inv, sort) if files else None
    if as_json:
        _emit_json(render.as_dict(inv, summary, rows))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        _emit(render.as_text(inv, summary, rows, color=color))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Extract into a directory that is not empty.")
@click.option(
    "--devices",
    is_flag=True,
    help="Create device nodes (needs root); without it they are skipped and listed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def extract(image: str, directory: str, force: bool, devices: bool, as_json: bool) -> None:
    """Unpack IMAGE into DIRECTORY, safely: nothing is ever written outside DIRECTORY.

    Paths are confined to DIRECTORY (symlinks are followed as if DIRECTORY were the root,
    and a path that would climb out of it is refused); modes, times, symlinks and hardlinks
    are kept.
    """
    from footprint.image.extract import extract as run

    result = run(image, directory, force=force, devices=devices)
    if as_json:
        from footprint.schemas import SCHEMA_VERSION

        _emit_json({"schema_version": SCHEMA_VERSION, **result.as_dict()})
        return
    _emit(
        f"extracted {result.files} files, {result.dirs} dirs, {result.symlinks} symlinks, "
        f"{result.hardlinks} hardlinks, {result.devices} devices ({result.bytes} bytes) "
        f"into {directory}\n"
    )
    for name, reason in result.refused:
        click.echo(f"footprint: refused {name!r}: {reason}", err=True)
    for name, reason in result.skipped:
        click.echo(f"footprint: not created {name!r}: {reason}", err=True)


def _common_analysis(f: Any) -> Any:
    f = click.option(
        "--page-size",
        type=click.IntRange(min=512),
        default=4096,
        show_default=True,
        help="Page size of the capture kernel.",
    )(f)
    f = click.option(
        "--rules",
        "rules_file",
        type=click.Path(dir_okay=False),
        help="TOML component rules, tried before the built-in ones.",
    )(f)
    return f


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "--by",
    type=click.Choice(["component", "package", "dracut-module", "file"]),
    default="component",
    show_default=True,
    help="What to group the image's files by.",
)
@click.option(
    "--owner-db",
    type=click.Choice(["dpkg"]),
    help="With --by package: also ask this host's package database (for images "
    "built on this host); ELF package notes are always used.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@_common_analysis
def components(
    image: str, by: str, owner_db: str | None, as_json: bool, page_size: int, rules_file: str | None
) -> None:
    """What each userspace component adds to the reservation, shares adding up to the total.

    Files go to components by rules (first match wins; see --rules); a shared library no
    rule claims goes to the components whose programs load it, split equally between them.
    """
    from footprint.analyze import analyze
    from footprint.report import components as render

    a = analyze(
        image, page_size=page_size, rules_file=rules_file, dracut_modules=by == "dracut-module"
    )
    if by in ("component", "dracut-module"):
        doc = render.components_dict(a)
        _emit_json(doc) if as_json else _emit(render.components_text(doc))
        return
    from footprint.components.owners import group_by

    doc = group_by(a, by, owner_db)
    _emit_json(doc) if as_json else _emit(render.groups_text(doc))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
def elf(image: str, path: str, as_json: bool) -> None:
    """One binary of IMAGE in depth: its ELF facts and its library closure as a tree."""
    from footprint.analyze import analyze
    from footprint.errors import UsageError
    from footprint.report import components as render

    a = analyze(image, components=False)
    node = a.inventory.rootfs.lookup(path.lstrip("/"))
    if node is None:
        raise UsageError(f"{path} is not in {image}")
    if node.path not in a.facts:
        raise UsageError(
            f"{path} is not an ELF file that footprint parsed (kernel modules "
            "are counted, not parsed)"
        )
    doc = render.closure_dict(a, a.resolver.closure(node.path))
    _emit_json(doc) if as_json else _emit(render.closure_text(doc))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "--kernel",
    type=click.Path(dir_okay=False),
    help="The capture kernel (bzImage, UKI or vmlinux), for the kernel's own size.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the profile here (default: standard output).",
)
@_common_analysis
def profile(
    image: str, kernel: str | None, output: str | None, page_size: int, rules_file: str | None
) -> None:
    """Everything static about IMAGE in one saved JSON profile (schema_version 1).

    diff, check and report read a profile back without the image.
    """
    from footprint.analyze import analyze
    from footprint.report import components as render

    a = analyze(image, page_size=page_size, rules_file=rules_file, kernel=kernel)
    text = render.profile_json(a)
    if output is None:
        _emit(text)
        return
    from footprint.report.files import write_atomically

    write_atomically(output, text)
    r = a.reservation
    click.echo(
        f"wrote {output}: static estimate {r.static_estimate_bytes >> 20} MiB, "
        f"kdumpctl formula {r.kdumpctl_formula_bytes >> 20} MiB",
        err=True,
    )


def _size(text: str) -> int:
    """128M, 1G, 512K or a plain number of bytes."""
    from footprint.units import parse_size

    try:
        return parse_size(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size (like 256M, 1G)") from None


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "--memory",
    default="512M",
    show_default=True,
    help="The cgroup memory limit (the capture kernel's RAM for userspace).",
)
@click.option(
    "--run",
    "run_cmd",
    help="Run this instead of the image's /init, e.g. \"/bin/sh "
    "-c '…'\" (split like a shell would).",
)
@click.option("--rdinit", default="/init", show_default=True, help="The image's init.")
@click.option(
    "--until", help="Stop with success when this regular expression appears on the console."
)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds.")
@click.option(
    "--interval", type=float, default=0.05, show_default=True, help="Sampling interval in seconds."
)
@click.option("--cmdline", help="The kernel command line the image sees in /proc/cmdline.")
@click.option(
    "--bisect",
    "bisect_range",
    is_flag=False,
    flag_value="auto",
    help="Find the smallest limit that still succeeds: --bisect or --bisect LOW:HIGH.",
)
@click.option("--resolution", default="1M", show_default=True, help="Bisection resolution.")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
def measure(
    image: str,
    memory: str,
    run_cmd: str | None,
    rdinit: str,
    until: str | None,
    timeout: float,
    interval: float,
    cmdline: str | None,
    bisect_range: str | None,
    resolution: str,
    as_json: bool,
) -> None:
    """Run IMAGE's userspace under a cgroup memory limit and measure what it uses.

    The image is unpacked into a tmpfs charged to a fresh memory cgroup (capped at half the
    limit, like the kernel's rootfs), then its init runs in new user, mount, pid, ipc, uts and
    network namespaces with the image as its root. Needs root. Exit 1 when the run failed
    under its limit (OOM, unpack failure, timeout).
    """
    import shlex

    from footprint.analyze import analyze
    from footprint.measure import runner
    from footprint.report import components as comp_render
    from footprint.report import measure as render

    a = analyze(image)
    owner = _owner_of(a)
    assert a.attribution is not None  # analyze() attributes by default
    # The static figures of each component (not the whole components document, whose
    # missing-library report would resolve every executable for nothing).
    static = {n: comp_render.component_row(c, None) for n, c in a.attribution.components.items()}
    argv = tuple(shlex.split(run_cmd)) if run_cmd else (rdinit,)
    options = dict(
        argv=argv,
        until=until,
        timeout=timeout,
        interval=interval,
        owner=owner,
        cmdline=cmdline or runner.DEFAULT_CMDLINE,
    )
    rootfs = a.summary.boot.rootfs_bytes
    if bisect_range is None:
        m = runner.measure(image, _size(memory), **options)
        doc = render.measurement_dict(m, static, rootfs)
        ok = m.succeeded
    else:
        from footprint.measure.bisect import bisect

        if bisect_range == "auto":
            low, high = rootfs, 4 * rootfs + (256 << 20)
        else:
            lo_text, _, hi_text = bisect_range.partition(":")
            low, high = _size(lo_text), _size(hi_text)
        b = _with_progress(
            lambda report: bisect(
                lambda limit: runner.measure(image, limit, **options),
                low,
                high,
                _size(resolution),
                progress=report,
            )
        )
        at = b.at_minimum
        doc = render.measurement_dict(at, static, rootfs) if at else {"schema_version": 1}
        doc["bisect"] = render.bisection_dict(b)
        doc["minimum_bytes"] = b.minimum_bytes
        doc["trials"] = doc["bisect"]["trials"]
        ok = b.minimum_bytes is not None
    if as_json:
        _emit_json(doc)
    else:
        _emit(render.measurement_text(doc))
    if not ok:
        raise click.exceptions.Exit(1)


def _qemu_options(f: Any) -> Any:
    """The options of a QEMU boot; the command receives them as **qemu, see _boot_at()."""
    f = click.option(
        "--kernel",
        required=True,
        type=click.Path(dir_okay=False),
        help="The capture kernel: a bzImage (Debian: /boot/vmlinuz-*) or a UKI.",
    )(f)
    f = click.option("--append", default="", help="Added to the kdump-like command line.")(f)
    f = click.option("--cmdline", help="Replace the kdump-like command line entirely.")(f)
    f = click.option(
        "--until",
        help="Success when this regular expression appears on the "
        "console (default: init settled, or finished).",
    )(f)
    f = click.option("--timeout", type=float, default=120.0, show_default=True)(f)
    f = click.option(
        "--rdinit", "init", default="/init", show_default=True, help="The image's init."
    )(f)
    f = click.option(
        "--accel",
        type=click.Choice(["auto", "kvm", "tcg"]),
        default="auto",
        show_default=True,
        help="auto: KVM if a trial boot works, else TCG.",
    )(f)
    return f


def _boot_at(
    boot_fn: Callable[..., Any], image: str, qemu: dict[str, Any], min_timeout: float = 0.0
) -> Callable[[int], Any]:
    """limit -> boot_fn(image, kernel, limit, …) with the _qemu_options the user gave."""
    options = dict(qemu, timeout=max(qemu["timeout"], min_timeout))
    kernel = options.pop("kernel")
    return lambda limit: boot_fn(image, kernel, limit, **options)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--memory", default="512M", show_default=True, help="The VM's RAM (-m).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@_qemu_options
def boot(image: str, memory: str, as_json: bool, **qemu: Any) -> None:
    """Boot IMAGE with KERNEL in QEMU with a memory probe, and say what happened.

    Outcomes: success, unpack-failed, oom, panic, timeout (exit 1 unless success).
    """
    from footprint.measure.qemu import boot as run
    from footprint.report import boot as render

    r = _boot_at(run, image, qemu)(_size(memory))
    doc = render.boot_dict(r, _owner_by_name(image))
    _emit_json(doc) if as_json else _emit(render.boot_text(doc))
    if not r.succeeded:
        raise click.exceptions.Exit(1)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--resolution", default="4M", show_default=True)
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Repeat the boundary trials this many times and report the spread.",
)
@click.option(
    "--without",
    "without",
    multiple=True,
    help="Also calibrate a copy without this component (and its exclusive "
    "libraries); repeatable: removed together.",
)
@click.option(
    "--ablate-all",
    is_flag=True,
    help="Calibrate without each removable component in turn and tabulate.",
)
@click.option(
    "--kdump",
    is_flag=True,
    help="Also bisect crashkernel= with a real crash: a first kernel loads the image with "
    "kexec -p and panics; the capture kernel boots in the reservation.",
)
@click.option(
    "--rules",
    "rules_file",
    type=click.Path(dir_okay=False),
    help="Component rules, as for `components`.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@_qemu_options
def calibrate(
    image: str,
    resolution: str,
    repeat: int,
    without: tuple[str, ...],
    ablate_all: bool,
    kdump: bool,
    rules_file: str | None,
    as_json: bool,
    **qemu: Any,
) -> None:
    """The smallest RAM with which IMAGE boots, and the crashkernel= to reserve.

    Bisects QEMU's -m from bounds set by the static model, then prints the recommended
    reservation with its terms, next to the model and kdumpctl's formula. With --without or
    --ablate-all, also what removing components really saves, next to the model's marginal.
    """
    import tempfile

    from footprint.analyze import analyze
    from footprint.image.repack import main_codec, repack
    from footprint.measure import ablate
    from footprint.measure.calibrate import calibrate as run_calibration
    from footprint.measure.qemu import boot as run
    from footprint.report import boot as render

    a = analyze(image, kernel=qemu["kernel"], rules_file=rules_file)
    res = a.reservation
    step = _size(resolution)
    rdinit = qemu["init"]

    def calibrate_with(boot_at: Callable[[int], Any], model: int) -> Any:
        return _with_progress(
            lambda report: run_calibration(
                boot_at,
                model,
                res.kdumpctl_formula_bytes,
                res.kernel_bytes,
                res.initrd_compressed_bytes,
                res.rootfs_bytes,
                step,
                repeat,
                progress=report,
            )
        )

    codec = main_codec(a.inventory)  # the copies are written with the image's own codec
    plans = []  # refused components are refused before any boot
    if without:
        plans.append(ablate.plan(a, list(without), rdinit))
    skipped = []
    if ablate_all:
        plans += [ablate.plan(a, [n], rdinit) for n in ablate.removable(a, rdinit, step)]
        measured = {p.component for p in plans}
        assert a.attribution is not None
        skipped = [
            {
                "component": n,
                "static_marginal_mib": round(c.marginal_bytes / (1 << 20), 1),
                "reason": ablate.refusal(a, n, rdinit) or "smaller than the resolution",
            }
            for n, c in a.attribution.components.items()
            if n not in measured
        ]
    c = calibrate_with(_boot_at(run, image, qemu), res.static_estimate_bytes)
    at = c.bisection.at_minimum
    doc = render.calibration_dict(c, render.boot_dict(at) if at is not None else None)
    if kdump:
        from footprint.measure.kdump import kdump_boot

        k = calibrate_with(
            _boot_at(kdump_boot, image, qemu, min_timeout=180.0),
            c.bisection.minimum_bytes or res.static_estimate_bytes,
        )
        kat = k.bisection.at_minimum
        doc["kdump"] = render.calibration_dict(k, render.boot_dict(kat) if kat else None)
        if k.bisection.minimum_bytes and c.bisection.minimum_bytes:
            doc["kexec_minus_direct_mib"] = (
                k.bisection.minimum_bytes - c.bisection.minimum_bytes
            ) // (1 << 20)
    if plans and c.bisection.minimum_bytes is not None:
        rows = []
        with tempfile.TemporaryDirectory(prefix="footprint-ablate-") as tmp:
            for i, p in enumerate(plans):
                copy = repack(image, f"{tmp}/ablated-{i}.img", set(p.paths), codec)
                abl = calibrate_with(
                    _boot_at(run, copy.path, qemu),
                    c.bisection.minimum_bytes - p.static_marginal_unpack_bytes,
                )
                rows.append(render.ablation_row(p, c, abl, copy.codec))
        doc["ablations"] = rows
    if skipped:
        doc["ablations_skipped"] = skipped
    _emit_json(doc) if as_json else _emit(render.calibration_text(doc))
    if c.bisection.minimum_bytes is None:
        raise click.exceptions.Exit(1)


def _with_progress(work: Any) -> Any:
    """Run work(report) with a rich progress line on stderr and one line per trial."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from footprint.units import human

    console = Console(stderr=True)
    count = [0]
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("bisecting")

        def report(t: Any, lo: int, hi: int) -> None:
            count[0] += 1
            console.print(
                f"  trial {count[0]}: {human(t.limit_bytes):>10} → {t.outcome}"
                f" ({t.duration_s:.1f} s)"
            )
            progress.update(task, description=f"bisecting, {count[0]} trials")

        return work(report)


@cli.command(name="diff", epilog=EXIT_CODES_HELP)
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--raw", is_flag=True, help="Match paths as they are (no version folding).")
@click.option("--min-change", default="0", help="Hide changes smaller than this (e.g. 4K).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@click.option("--markdown", is_flag=True, help="Print Markdown.")
@_common_analysis
def diff_cmd(
    old: str,
    new: str,
    raw: bool,
    min_change: str,
    as_json: bool,
    markdown: bool,
    page_size: int,
    rules_file: str | None,
) -> None:
    """What grew between OLD and NEW (each an image or a saved profile)."""
    from footprint.gate.diff import diff
    from footprint.gate.load import load_profile
    from footprint.report import diff as render

    a = load_profile(old, rules_file, page_size)
    b = load_profile(new, rules_file, page_size)
    doc = render.diff_dict(diff(a, b, raw=raw, min_change=_size(min_change)))
    if as_json:
        _emit_json(doc)
    else:
        _emit(render.diff_markdown(doc) if markdown else render.diff_text(doc))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False))
@click.option("--kernel", type=click.Path(dir_okay=False), help="As for `profile`.")
@_common_analysis
def baseline(
    image: str, output: str, kernel: str | None, page_size: int, rules_file: str | None
) -> None:
    """Save IMAGE's profile as the baseline a later `check --baseline` compares against."""
    from footprint.analyze import analyze
    from footprint.report import components as render
    from footprint.report.files import write_atomically

    a = analyze(image, page_size=page_size, rules_file=rules_file, kernel=kernel)
    write_atomically(output, render.profile_json(a))
    click.echo(f"wrote baseline {output}", err=True)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("image", type=click.Path(dir_okay=False))
@click.option(
    "--budget",
    "budget_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="The budget (TOML; see the README).",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False),
    help="A profile (or image) to compare against, for [baseline] limits.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
@click.option("--markdown", is_flag=True, help="Print Markdown instead of text.")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False),
    help="Also write JUnit XML here (one testcase per budget line).",
)
@_common_analysis
def check(
    image: str,
    budget_file: str,
    baseline: str | None,
    as_json: bool,
    markdown: bool,
    junit: str | None,
    page_size: int,
    rules_file: str | None,
) -> None:
    """The CI gate: does IMAGE (or a saved profile) fit its budget? Exit 1 if not.

    With $GITHUB_STEP_SUMMARY set, the Markdown table is appended to it.
    """
    from footprint.gate.budget import evaluate, failed, load_budget
    from footprint.gate.load import load_profile
    from footprint.report import check as render
    from footprint.report.files import write_atomically

    budget = load_budget(budget_file)
    profile_doc = load_profile(image, rules_file, page_size)
    base = load_profile(baseline, rules_file, page_size) if baseline else None
    verdicts = evaluate(budget, profile_doc, base)
    bad = failed(verdicts, budget)
    doc = render.check_dict(image, verdicts, bad, budget.get("budget", {}).get("mode", "enforce"))
    if junit:
        write_atomically(junit, render.check_junit(doc))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(render.check_markdown(doc))
    if as_json:
        _emit_json(doc)
    else:
        _emit(render.check_markdown(doc) if markdown else render.check_text(doc))
    if bad:
        raise click.exceptions.Exit(1)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("profiles", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the report here (default: standard output).",
)
@click.option("--markdown", is_flag=True, help="Markdown instead of HTML.")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="A label per profile, in order (default: the image's file name).",
)
@click.option(
    "--timeline",
    "timelines",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A `measure --json` or `boot --json` document whose timeline to plot.",
)
def report(
    profiles: tuple[str, ...],
    output: str | None,
    markdown: bool,
    labels: tuple[str, ...],
    timelines: tuple[str, ...],
) -> None:
    """A per-release report over PROFILES (oldest first): one self-contained HTML file.

    Trend of the total and of each component, the latest breakdown, the top growers and the
    diff between consecutive releases; charts inline (matplotlib), no network fetches.
    """
    from footprint.errors import UsageError
    from footprint.gate.load import load_profile
    from footprint.report import html
    from footprint.report.files import write_atomically

    docs = [load_profile(p) for p in profiles]
    if labels:
        if len(labels) != len(docs):
            raise UsageError(f"{len(labels)} --label for {len(docs)} profiles")
        for doc, label in zip(docs, labels, strict=True):
            doc["label"] = label
    extra = []
    for path in timelines:
        try:
            with open(path, encoding="utf-8") as f:
                extra.append(json.load(f))
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot read timeline {path}: {e}") from None
    data = html.report_data(docs, extra)
    text = html.render_markdown(data) if markdown else html.render_html(data)
    if output:
        write_atomically(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        _emit(text)


def _owner_by_name(image: str) -> Any:
    """A process name (as the probe sees it) -> the component of the file of that name."""
    from footprint.analyze import analyze

    a = analyze(image)
    owner = _owner_of(a)
    by_name: dict[str, str] = {}
    for path, node in sorted(a.inventory.rootfs.nodes.items()):
        if node.kind != "dir":  # symlinks too: systemd-udevd is udevadm under another name
            by_name.setdefault(os.path.basename(path)[:15], owner(path))
    by_name["footprint-probe"] = "footprint-probe"
    by_name["(udev-worker)"] = by_name.get("systemd-udevd", "udev")

    return lambda name: by_name.get(name, "unknown")


def _owner_of(a: Any) -> Any:
    """path inside the image -> the component that owns the file (symlinks resolved)."""
    rootfs, att = a.inventory.rootfs, a.attribution

    def owner(path: str) -> str:
        node = rootfs.lookup(path.lstrip("/"))
        if node is None or node.inode is None:
            return "unknown"
        name = att.owner.get(node.path, "other")  # every hardlink name has its owner
        return "other" if name == "shared" else name

    return owner


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; the only place that exits."""
    cli.main(args=argv, prog_name="footprint")
