"""The `footprint` command: parses options, calls the core, picks a renderer, maps errors.

main() is the only place that exits. Core modules are imported inside each command so that
a command never pays for what it does not use (lief is ~0.3 s to import).
"""

from __future__ import annotations

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
    UsageError,
)
from footprint.schemas import KINDS

EXIT_CODES_HELP = """\b
Exit codes:
  0  ok
  1  negative verdict (a budget exceeded, a run that failed under its limit)
  2  usage error
  3  bad or unsupported image, or a document that is not a valid profile
  4  this machine cannot do what was asked (not root, no cgroup, no qemu, no kernel)
  70 internal error (a bug in footprint: please report it)
  130/143 interrupted (SIGINT) / terminated (SIGTERM)
"""


def _emit(text: str) -> None:
    from footprint.paths import shown

    try:
        sys.stdout.write(shown(text))
        sys.stdout.flush()
    except OSError as e:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere
        if not isinstance(e, BrokenPipeError):  # `footprint inspect … | head` is fine
            # a full disk, a closed descriptor: say so, in one line
            raise EnvironmentUnavailable(f"cannot write the output: {e.strerror or e}") from None


def _emit_json(doc: dict[str, Any]) -> None:
    from footprint.paths import json_text

    _emit(json_text(doc) + "\n")


def _output(doc: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> None:
    """The document as JSON, or rendered by `text`."""
    _emit_json(doc) if as_json else _emit(text(doc))


FILE = click.Path(dir_okay=False)
OUTPUT = click.Path(dir_okay=False, allow_dash=True)  # "-": standard output
json_option = click.option("--json", "as_json", is_flag=True, help="Print the JSON document.")
kernel_option = click.option(
    "--kernel",
    type=FILE,
    help="The capture kernel (bzImage, UKI or vmlinux) for the kernel term of images analysed.",
)

kernel_profile_option = click.option(
    "--kernel-profile",
    type=FILE,
    help="A kernel profile (`calibrate-kernel -o kernel.json`): the reservation's prediction "
    "adds its measured runtime terms (without one it is the static floor).",
)


def _kernel_profile(path: str | None) -> Any:
    """The KernelProfile at `path`, or None."""
    if path is None:
        return None
    from footprint.model.kernel_profile import load

    return load(path)


class FootprintCommand(click.Command):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", EXIT_CODES_HELP)
        super().__init__(*args, **kwargs)


class FootprintGroup(click.Group):
    """Maps every outcome of a command to its documented exit code, also under CliRunner."""

    command_class = FootprintCommand

    def main(  # type: ignore[override]
        self,
        args: list[str] | None = None,
        prog_name: str | None = None,
        standalone_mode: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Usage errors in the README's one line, `footprint: error: …` (exit 2), not click's
        three; everything else as click's standalone mode does it."""
        if not standalone_mode:
            return super().main(args, prog_name, standalone_mode=False, **kwargs)
        try:
            code = super().main(args, prog_name, standalone_mode=False, **kwargs)
        except click.UsageError as e:
            where = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
            click.echo(f"footprint: error: {e.format_message()}{where}", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:  # Ctrl-C while click parses the command line
            click.echo("footprint: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

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
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="footprint")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """What an initramfs holds and what it costs a kdump crashkernel= reservation."""
    if ctx.invoked_subcommand in (
        "measure",
        "boot",
        "calibrate",
        "calibrate-kernel",
    ):  # they make cgroups, temp dirs
        from footprint import lifetime

        notice = lifetime.describe(lifetime.reap_stale())
        if notice:
            click.echo(f"footprint: {notice}", err=True)


@cli.command()
@click.argument("image", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Print the JSON document (schema_version 1).")
@click.option("--files", is_flag=True, help="List every path of the unpacked tree.")
@click.option(
    "--sort",
    type=click.Choice(["image", "name", "size"]),
    default="image",
    help="Order of the --files listing.",
)
@click.option(
    "--page-size",
    type=click.IntRange(min=512),
    default=4096,
    help="Page size of the capture kernel, for page-rounded costs.",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=10,
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


@cli.command()
@click.argument("image", type=FILE)
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
        from footprint.schemas import header

        _emit_json({**header("extract"), **result.as_dict()})
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
        help="Page size of the capture kernel.",
    )(f)
    f = click.option(
        "--rules",
        "rules_file",
        type=FILE,
        help="TOML component rules, tried before the built-in ones.",
    )(f)
    return f


@cli.command()
@click.argument("image", type=FILE)
@click.option(
    "--by",
    type=click.Choice(["component", "dracut-module", "package", "file"]),
    default="component",
    help="What to group the image's files by.",
)
@click.option(
    "--owner-db",
    "owner_db",
    multiple=True,
    metavar="dpkg|ROOT|CONTENTS|none",
    help="With --by package or file: where to look up files' packages, besides ELF package "
    "notes and the kernel's modules: dpkg (this host's database: used by itself when it ships "
    "the image's kernel), ROOT (the root the image was built in, with var/lib/dpkg/info), "
    "CONTENTS (a Debian Contents-<arch> index, plain, .gz, .xz or apt-file's .lz4) or none. "
    "Repeat it to ask several, in turn.",
)
@click.option(
    "--sort",
    type=click.Choice(["proportional", "marginal", "own", "shared", "compressed", "files", "name"]),
    default="proportional",
    help="Order of the components in the text (largest first; name: alphabetical).",
)
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=0,
    help="Print only the first N components and shared libraries, or --by package/file rows "
    "(0: all; --json lists all).",
)
@json_option
@kernel_profile_option
@_common_analysis
def components(
    image: str,
    by: str,
    owner_db: tuple[str, ...],
    sort: str,
    top: int,
    as_json: bool,
    kernel_profile: str | None,
    page_size: int,
    rules_file: str | None,
) -> None:
    """What each userspace component adds to the reservation, shares adding up to the total.

    IMAGE is an image or a saved profile. Files go to components by rules (first match wins;
    see --rules); a shared library no rule claims goes to the components whose programs load
    it, split equally between them.
    """
    from footprint.components import groupings
    from footprint.profile import open_profile
    from footprint.report import components as render

    if owner_db and by not in groupings.GROUPINGS:
        raise UsageError("--owner-db is for --by package or --by file")
    dbs = groupings.owner_dbs(owner_db) if owner_db else None
    p = open_profile(
        image,
        rules_file=rules_file,
        page_size=page_size,
        dracut_modules=by == "dracut-module",
        kernel_profile=_kernel_profile(kernel_profile),
    )
    if by in groupings.GROUPINGS:
        doc = render.groups_dict(groupings.group(p, by, dbs))
        _output(doc, as_json, lambda d: render.groups_text(d, top))
        return
    doc = render.components_dict(p)
    _output(doc, as_json, lambda d: render.components_text(d, sort, top))


@cli.command()
@click.argument("image", type=FILE)
@click.argument("path")
@json_option
def elf(image: str, path: str, as_json: bool) -> None:
    """One binary of IMAGE in depth: its ELF facts and its library closure as a tree."""
    from footprint.analyze import analyze
    from footprint.report import components as render

    a = analyze(image, components=False)
    doc = render.closure_dict(a, a.closure_of(path))
    _output(doc, as_json, render.closure_text)


@cli.command()
@click.argument("image", type=FILE)
@kernel_option
@click.option(
    "-o",
    "--output",
    type=OUTPUT,
    help="Write the profile here ('-' or none: standard output).",
)
@kernel_profile_option
@_common_analysis
def profile(
    image: str,
    kernel: str | None,
    output: str | None,
    kernel_profile: str | None,
    page_size: int,
    rules_file: str | None,
) -> None:
    """Everything static about IMAGE in one saved JSON profile (schema_version 1).

    diff, check, report and components read a profile back without the image.
    """
    from footprint.profile import open_profile

    p = open_profile(
        image,
        rules_file=rules_file,
        page_size=page_size,
        kernel=kernel,
        kernel_profile=_kernel_profile(kernel_profile),
    )
    if output in (None, "-"):
        _emit(p.to_json())
        return
    _write(output, p.to_json())
    r = p.reservation
    predicted = ""
    if r.prediction is not None and r.prediction.basis == "kernel-profile":
        predicted = (
            f", predicted crashkernel {(r.predicted_crashkernel_bytes or 0) >> 20} MiB "
            f"(recommended {r.prediction.recommended_crashkernel})"
        )
    click.echo(
        f"wrote {output}: static estimate {r.static_estimate_bytes >> 20} MiB, "
        f"kdumpctl formula {r.kdumpctl_formula_bytes >> 20} MiB{predicted}",
        err=True,
    )
    for warning in p.basis.warnings:
        click.echo(f"footprint: warning: {warning}", err=True)


def _write(path: str, text: str) -> None:
    """`text` into `path` whole or not at all; "-" is standard output."""
    from footprint.paths import shown

    if path == "-":
        _emit(text)
        return
    from footprint.report.files import write_atomically

    write_atomically(path, shown(text))


class Size(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """128M, 1G, 512K or a plain number of bytes, as bytes."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from footprint.units import parse_size

        try:
            return parse_size(value)
        except (ValueError, OverflowError) as e:
            why = str(e) if str(e).startswith(repr(value)) else f"{value!r} is not a size"
            self.fail(f"{why} (like 256M, 1G)", param, ctx)


SIZE = Size()


def _size(text: str) -> int:
    return SIZE.convert(text, None, None)


@cli.command()
@click.argument("image", type=FILE)
@click.option("--memory", type=SIZE, default="512M", help="The cgroup limit (userspace's RAM).")
@click.option(
    "--run",
    "run_cmd",
    help="Run this instead of the image's /init, e.g. \"/bin/sh "
    "-c '…'\" (split like a shell would).",
)
@click.option("--rdinit", default="/init", help="The image's init.")
@click.option(
    "--until", help="Stop with success when this regular expression appears on the console."
)
@click.option("--timeout", type=float, default=60.0, help="Seconds.")
@click.option("--interval", type=float, default=0.05, help="Sampling interval in seconds.")
@click.option("--cmdline", help="The kernel command line the image sees in /proc/cmdline.")
@click.option(
    "--bisect",
    "bisect_range",
    is_flag=False,
    flag_value="auto",
    help="Find the smallest limit that still succeeds: --bisect or --bisect LOW:HIGH.",
)
@click.option("--resolution", type=SIZE, default="1M", help="Bisection resolution.")
@json_option
def measure(
    image: str,
    memory: int,
    run_cmd: str | None,
    rdinit: str,
    until: str | None,
    timeout: float,
    interval: float,
    cmdline: str | None,
    bisect_range: str | None,
    resolution: int,
    as_json: bool,
) -> None:
    """Run IMAGE's userspace under a cgroup memory limit and measure what it uses.

    The image is unpacked into a tmpfs charged to a fresh memory cgroup (capped at half the
    limit, like the kernel's rootfs), then its init runs in new user, mount, pid, ipc, uts and
    network namespaces with the image as its root. Needs root. Exit 1 when the run failed
    under its limit (OOM, unpack failure, timeout).
    """
    import shlex

    from footprint.measure.runner import DEFAULT_CMDLINE, CgroupOptions
    from footprint.measure.workflow import MeasureRequest, measure_image
    from footprint.report import measure as render
    from footprint.report.progress import with_progress

    bounds = None
    if bisect_range not in (None, "auto"):
        lo_text, _, hi_text = bisect_range.partition(":")
        bounds = (_size(lo_text), _size(hi_text))
    request = MeasureRequest(
        image,
        memory,
        CgroupOptions(
            argv=tuple(shlex.split(run_cmd)) if run_cmd else (rdinit,),
            cmdline=cmdline or DEFAULT_CMDLINE,
            until=until,
            timeout=timeout,
            interval=interval,
        ),
        bisect=bisect_range is not None,
        bounds=bounds,
        resolution=resolution,
    )
    if request.bisect:
        run = with_progress(lambda report: measure_image(request, report))
    else:
        run = measure_image(request)
    doc = render.measure_run_dict(run)
    _output(doc, as_json, render.measurement_text)
    if not run.succeeded:
        raise click.exceptions.Exit(1)


def _qemu_options(f: Any) -> Any:
    """The options of a QEMU boot; the command receives them as keywords, see _qemu_of()."""
    f = click.option(
        "--kernel",
        required=True,
        type=FILE,
        help="The capture kernel: a bzImage (Debian: /boot/vmlinuz-*) or a UKI.",
    )(f)
    f = click.option("--append", default="", help="Added to the kdump-like command line.")(f)
    f = click.option("--cmdline", help="Replace the kdump-like command line entirely.")(f)
    f = click.option(
        "--until",
        help="Success when this regular expression appears on the "
        "console (default: init settled, or finished).",
    )(f)
    f = click.option("--timeout", type=float, default=120.0)(f)
    f = click.option("--rdinit", "init", default="/init", help="The image's init.")(f)
    f = click.option(
        "--accel",
        type=click.Choice(["auto", "kvm", "tcg"]),
        default="auto",
        help="auto: KVM if a trial boot works, else TCG.",
    )(f)
    return f


@cli.command()
@click.argument("image", type=FILE)
@click.option("--memory", type=SIZE, default="512M", help="The VM's RAM (-m).")
@json_option
@_qemu_options
def boot(image: str, memory: int, as_json: bool, **qemu: Any) -> None:
    """Boot IMAGE with KERNEL in QEMU with a memory probe, and say what happened.

    Outcomes: success, unpack-failed, oom, panic, timeout (exit 1 unless success).
    """
    from footprint.measure.qemu import QemuOptions
    from footprint.measure.workflow import boot_image
    from footprint.report import boot as render

    run = boot_image(image, memory, QemuOptions(**qemu))
    doc = render.boot_dict(run.result, run.components)
    _output(doc, as_json, render.boot_text)
    if not run.result.succeeded:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("image", type=FILE)
@click.option("--resolution", type=SIZE, default="4M")
@click.option(
    "--repeat",
    type=click.IntRange(min=1),
    default=1,
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
    type=FILE,
    help="Component rules, as for `components`.",
)
@kernel_profile_option
@json_option
@_qemu_options
def calibrate(
    image: str,
    resolution: int,
    repeat: int,
    without: tuple[str, ...],
    ablate_all: bool,
    kdump: bool,
    rules_file: str | None,
    kernel_profile: str | None,
    as_json: bool,
    **qemu: Any,
) -> None:
    """The smallest RAM with which IMAGE boots, and the crashkernel= to reserve.

    Bisects QEMU's -m from bounds set by the static model, then prints the recommended
    reservation with its terms, next to the model and kdumpctl's formula. With --without or
    --ablate-all, also what removing components really saves, next to the model's marginal.
    """
    from footprint.measure.qemu import QemuOptions
    from footprint.measure.workflow import CalibrateRequest, calibrate_image
    from footprint.report import boot as render
    from footprint.report.progress import with_progress

    request = CalibrateRequest(
        image,
        QemuOptions(**qemu),
        resolution=resolution,
        repeat=repeat,
        without=without,
        ablate_all=ablate_all,
        kdump=kdump,
        rules_file=rules_file,
        kernel_profile=_kernel_profile(kernel_profile),
    )
    run = with_progress(lambda report: calibrate_image(request, report))
    doc = render.calibrate_run_dict(run)
    _output(doc, as_json, render.calibration_text)
    if run.direct.bisection.minimum_bytes is None:
        raise click.exceptions.Exit(1)


@cli.command(name="calibrate-kernel")
@click.argument("vmlinuz", type=FILE)
@click.option(
    "-o",
    "--output",
    required=True,
    type=OUTPUT,
    help="Write the kernel profile here ('-': standard output).",
)
@click.option(
    "--modules-dir",
    type=click.Path(file_okay=False),
    help="The kernel's modules (default: /lib/modules/<its release>).",
)
@click.option(
    "--module",
    "modules",
    multiple=True,
    help="A module to insmod for the per-module term (repeatable; dependencies follow "
    "modules.dep). Default: crc32c_generic, xfs, btrfs, amdgpu.",
)
@click.option("--resolution", type=SIZE, default="4M")
@click.option("--timeout", type=float, default=120.0, help="Seconds per boot.")
@click.option(
    "--accel",
    type=click.Choice(["auto", "kvm", "tcg"]),
    default="auto",
    help="auto: KVM if a trial boot works, else TCG.",
)
def calibrate_kernel(
    vmlinuz: str,
    output: str,
    modules_dir: str | None,
    modules: tuple[str, ...],
    resolution: int,
    timeout: float,
    accel: str,
) -> None:
    """Measure VMLINUZ's runtime terms once, for predictions without booting (--kernel-profile).

    Boots the kernel in QEMU with minimal initrds footprint writes itself (static busybox):
    the smallest -m they boot in, and how it moves per MiB of rootfs, of initrd held, of
    modules loaded, per CPU, and — under a real kexec -p capture — per MiB of the crashing
    kernel's RAM. About 25 boots; a few minutes under TCG.
    """
    from footprint.measure import kernel_calibrate as kc

    request = kc.Request(
        vmlinuz,
        modules_dir=modules_dir,
        modules=modules or kc.MODULES,
        resolution=resolution,
        accel=accel,
        timeout=timeout,
    )

    def told(name: str, t: Any) -> None:
        click.echo(
            f"  {name:24} {t.limit_bytes >> 20:>6} MiB → {t.outcome} ({t.duration_s:.1f} s)",
            err=True,
        )

    k = kc.calibrate_kernel(request, told)
    _write(output, k.to_json())
    if output != "-":
        click.echo(
            f"wrote {output}: {k.kernel.release}, {k.boots} boots in {k.duration_s:.0f} s",
            err=True,
        )


@cli.command(name="diff")
@click.argument("old", type=FILE)
@click.argument("new", type=FILE)
@click.option("--raw", is_flag=True, help="Match paths as they are (no version folding).")
@click.option("--min-change", type=SIZE, default="0", help="Hide changes smaller than this (4K).")
@json_option
@click.option("--markdown", is_flag=True, help="Print Markdown.")
@click.option("--top", type=click.IntRange(min=0), default=25, help="Rows per section (0: all).")
@kernel_option
@_common_analysis
def diff_cmd(
    old: str,
    new: str,
    raw: bool,
    min_change: int,
    as_json: bool,
    markdown: bool,
    top: int,
    kernel: str | None,
    page_size: int,
    rules_file: str | None,
) -> None:
    """What grew between OLD and NEW (each an image or a saved profile)."""
    from footprint.gate.diff import diff
    from footprint.profile import open_profile
    from footprint.report import diff as render

    a = open_profile(old, rules_file=rules_file, page_size=page_size, kernel=kernel)
    b = open_profile(new, rules_file=rules_file, page_size=page_size, kernel=kernel)
    doc = render.diff_dict(diff(a, b, raw=raw, min_change=min_change))
    if as_json:
        _emit_json(doc)
    else:
        _emit(render.diff_markdown(doc, top) if markdown else render.diff_text(doc, top))


@cli.command()
@click.argument("image", type=FILE)
@click.option(
    "-o",
    "--output",
    required=True,
    type=OUTPUT,
    help="Write the baseline here ('-': standard output).",
)
@kernel_option
@_common_analysis
def baseline(
    image: str, output: str, kernel: str | None, page_size: int, rules_file: str | None
) -> None:
    """Save IMAGE's profile as the baseline a later `check --baseline` compares against."""
    from footprint.profile import open_profile

    p = open_profile(image, page_size=page_size, rules_file=rules_file, kernel=kernel)
    _write(output, p.to_json())
    if output != "-":
        click.echo(f"wrote baseline {output}", err=True)


@cli.command()
@click.argument("image", type=FILE)
@click.option(
    "--budget",
    "budget_file",
    required=True,
    type=FILE,
    help="The budget (TOML; see the README).",
)
@click.option(
    "--baseline",
    type=FILE,
    help="A profile (or image) to compare against, for [baseline] limits.",
)
@json_option
@click.option("--markdown", is_flag=True, help="Print Markdown instead of text.")
@click.option(
    "--junit",
    type=FILE,
    help="Also write JUnit XML here (one testcase per budget line).",
)
@kernel_option
@kernel_profile_option
@_common_analysis
def check(
    image: str,
    budget_file: str,
    baseline: str | None,
    as_json: bool,
    markdown: bool,
    junit: str | None,
    kernel: str | None,
    kernel_profile: str | None,
    page_size: int,
    rules_file: str | None,
) -> None:
    """The CI gate: does IMAGE (or a saved profile) fit its budget? Exit 1 if not.

    With $GITHUB_STEP_SUMMARY set, the Markdown table is appended to it.
    """
    from footprint.gate.budget import evaluate, failed, load_budget
    from footprint.profile import Profile, open_profile
    from footprint.report import check as render

    budget = load_budget(budget_file)
    kp = _kernel_profile(kernel_profile)

    def open_(path: str) -> Profile:
        return open_profile(
            path, rules_file=rules_file, page_size=page_size, kernel=kernel, kernel_profile=kp
        )

    p = open_(image)
    base = open_(baseline) if baseline else None
    e = evaluate(budget, p, base)
    bad = failed(e.verdicts, budget)
    doc = render.check_dict(image, e, bad, budget.mode)
    if junit:
        _write(junit, render.check_junit(doc))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as f:
                f.write(render.check_markdown(doc))
        except OSError as e:  # the verdict still stands, and is still printed
            click.echo(f"footprint: warning: cannot append to {summary}: {e.strerror}", err=True)
    if as_json:
        _emit_json(doc)
    else:
        _emit(render.check_markdown(doc) if markdown else render.check_text(doc))
    if bad:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("profiles", nargs=-1, required=True, type=FILE)
@click.option(
    "-o",
    "--output",
    type=OUTPUT,
    help="Write the report here ('-' or none: standard output).",
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
    type=FILE,
    help="A `measure --json` or `boot --json` document whose timeline to plot.",
)
@click.option(
    "--calibration",
    "calibrations",
    multiple=True,
    metavar="[LABEL=]FILE",
    help="A `calibrate --json` document: its measured terms and minima join the release "
    "LABEL's reservation (default: the latest release's).",
)
@click.option(
    "--crashkernel",
    default="512M-:192M",
    show_default=True,
    help="The crashkernel= line to draw against the reservation (the default is Debian "
    "amd64 kdump-tools').",
)
@click.option(
    "--machine-ram",
    type=SIZE,
    default="4G",
    show_default=True,
    help="The first kernel's RAM, to pick the --crashkernel range that applies.",
)
@kernel_option
def report(
    profiles: tuple[str, ...],
    output: str | None,
    markdown: bool,
    labels: tuple[str, ...],
    timelines: tuple[str, ...],
    calibrations: tuple[str, ...],
    crashkernel: str,
    machine_ram: int,
    kernel: str | None,
) -> None:
    """A per-release report over PROFILES (oldest first; images or saved profiles): one
    self-contained HTML page (plotly.js inline, no network fetches) or Markdown.

    The totals per release, an interactive size map and a searchable table of every file of
    the latest release, the diffs between consecutive releases (as `footprint diff`), the
    reservation's terms against the --crashkernel line, and measured timelines.
    """
    from footprint.errors import UsageError
    from footprint.model.crashkernel import parse_crashkernel
    from footprint.profile import open_profile
    from footprint.report import releases

    try:
        line = parse_crashkernel(crashkernel)
    except ValueError as e:
        raise UsageError(f"--crashkernel {e}") from None
    loaded = [open_profile(p, kernel=kernel) for p in profiles]
    if labels and len(labels) != len(loaded):
        raise UsageError(f"{len(labels)} --label for {len(loaded)} profiles")
    names = list(labels) or [p.label for p in loaded]
    if not labels and len(set(names)) < len(names):  # releases/1.0/initrd.img, releases/1.1/…
        names = list(profiles)
    by_label: dict[str, releases.Calibration] = {}
    for value in calibrations:
        label, sep, path = value.partition("=")
        if not sep or label not in names:
            label, path = names[-1], value
        if label in by_label:
            raise UsageError(f"two --calibration for the release {label!r}")
        by_label[label] = releases.load_calibration(path)
    data = releases.report_data(
        loaded,
        names,
        timelines=[releases.load_timeline(path) for path in timelines],
        calibrations=by_label,
        crashkernel=line,
        ram=machine_ram,
    )
    if markdown:
        from footprint.report.markdown import render_markdown

        text = render_markdown(data)
    else:
        from footprint.report.html import render_html

        text = render_html(data)
    _write(output or "-", text)
    if output not in (None, "-"):
        click.echo(f"wrote {output}", err=True)


@cli.command()
@click.argument("kind", type=click.Choice(KINDS))
def schema(kind: str) -> None:
    """Print the JSON Schema (draft 2020-12) of the documents of KIND that footprint writes."""
    from footprint.schemas import schema as schema_of

    _emit_json(schema_of(kind))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; the only place that exits."""
    cli.main(args=argv, prog_name="footprint")
