"""The `footprint` command: declares options, calls the core, picks a renderer.

Options are declared once in footprint.command, which also maps every error to its exit code;
main() is the only place that exits. Core modules are imported inside each command so that a
command never pays for what it does not use (lief is ~0.3 s to import).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from footprint import __version__
from footprint.command import (
    EXIT_CODES_HELP,
    FILE,
    FootprintGroup,
    calibrate_options,
    cgroup_options,
    emit,
    emit_json,
    kernels_qemu_options,
    note,
    opt,
    options,
    output,
    qemu_options,
    reading_options,
    save,
    write,
)
from footprint.schemas import KINDS

if TYPE_CHECKING:  # the CLI imports nothing of the core before a command runs
    from footprint.measure.qemu import QemuOptions
    from footprint.measure.runner import CgroupOptions
    from footprint.measure.workflow import CalibrateSettings
    from footprint.profile import ProfileOptions


@click.group(
    cls=FootprintGroup,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
)
@click.version_option(__version__, prog_name="footprint")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """What an initramfs holds and what it costs a kdump crashkernel= reservation."""
    if ctx.invoked_subcommand in ("measure", "boot", "calibrate", "calibrate-kernel"):
        from footprint import lifetime  # they make cgroups and temp dirs: reap a killed run's

        notice = lifetime.describe(lifetime.reap_stale())
        if notice:
            note(f"footprint: {notice}")


@cli.command()
@click.argument("image", type=FILE)
@opt("json", help="Print the JSON document (schema_version 1).")
@opt("files")
@opt("sort-inspect")
@opt("page-size", help="Page size of the capture kernel, for page-rounded costs.")
@opt("top", default=10, help="How many of the largest files to show.")
def inspect(image: str, as_json: bool, files: bool, sort: str, page_size: int, top: int) -> None:
    """Read IMAGE as the kernel would: its segments, its tree, and what unpacking it costs.

    IMAGE is an initramfs (any mix of plain cpio and gzip, bzip2, lzma, xz, lzo, lz4 or
    zstd members) or a unified kernel image.
    """
    from footprint.image.reader import scan
    from footprint.image.summary import summarize
    from footprint.report import inspect as render

    inv = scan(image)
    summary = summarize(inv, page_size, top)
    rows = render.file_rows(inv, sort) if files else None
    if as_json:
        emit_json(render.as_dict(inv, summary, rows))
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        emit(render.as_text(inv, summary, rows, color=color))


@cli.command()
@click.argument("image", type=FILE)
@click.argument("directory", type=click.Path(file_okay=False))
@opt("force")
@opt("devices")
@opt("json", help="Print what was done as JSON.")
def extract(image: str, directory: str, force: bool, devices: bool, as_json: bool) -> None:
    """Unpack IMAGE into DIRECTORY, safely: nothing is ever written outside DIRECTORY.

    Paths are confined to DIRECTORY (symlinks are followed as if DIRECTORY were the root,
    and a path that would climb out of it is refused); modes, times, symlinks and hardlinks
    are kept.
    """
    from footprint.image.extract import extract as run
    from footprint.report import inspect as render

    doc = render.extract_dict(run(image, directory, force=force, devices=devices))
    output(doc, as_json, lambda d: render.extract_text(d, directory))
    if not as_json:
        for line in render.extract_notes(doc):
            note(f"footprint: {line}")


@cli.command()
@click.argument("image", type=FILE)
@opt("by")
@opt("owner-db")
@opt("sort-components")
@opt("top-components")
@opt("suggest")
@opt("json")
@reading_options("kernel-profile", "page-size", "rules")
def components(
    image: str,
    by: str,
    owner_db: tuple[str, ...],
    sort: str,
    top: int,
    suggest: bool,
    as_json: bool,
    reading: ProfileOptions,
) -> None:
    """What each userspace component adds to the reservation, shares adding up to the total.

    IMAGE is an image or a saved profile. Files go to components by rules (first match wins;
    see --rules); a shared library no rule claims goes to the components whose programs load
    it, split equally between them.
    """
    from footprint.components import groupings
    from footprint.report import components as render

    dbs = groupings.owner_dbs(owner_db, by) if owner_db else None
    p = reading.open(image, dracut_modules=by == "dracut-module")
    if by in groupings.GROUPINGS:
        doc = render.groups_dict(groupings.group(p, by, dbs))
        output(doc, as_json, lambda d: render.groups_text(d, top))
    else:
        doc = render.components_dict(p, suggest)
        output(doc, as_json, lambda d: render.components_text(d, sort, top))


@cli.command()
@click.argument("image", type=FILE)
@click.argument("path")
@opt("json")
def elf(image: str, path: str, as_json: bool) -> None:
    """One binary of IMAGE in depth: its ELF facts and its library closure as a tree."""
    from footprint.analyze import analyze
    from footprint.report import components as render

    a = analyze(image, components=False)
    output(render.closure_dict(a, a.closure_of(path)), as_json, render.closure_text)


@cli.command()
@click.argument("image", type=FILE)
@opt("output", help="Write the profile here ('-' or none: standard output).")
@reading_options("kernel", "kernel-profile", "page-size", "rules")
def profile(image: str, output: str | None, reading: ProfileOptions) -> None:
    """Everything static about IMAGE in one saved JSON profile (schema_version 1).

    diff, check, report and components read a profile back without the image.
    """
    from footprint.report import components as render

    p = reading.open(image)
    save(output, p.to_json(), render.reservation_line(p))
    if output not in (None, "-"):
        for warning in p.basis.warnings:
            note(f"footprint: warning: {warning}")


@cli.command()
@click.argument("image", type=FILE)
@opt("memory-measure")
@cgroup_options
@opt("bisect")
@opt("resolution", default="1M", help="Bisection resolution.")
@opt("json")
def measure(
    image: str,
    memory: int,
    runner: CgroupOptions,
    bisect_range: str | tuple[int, int] | None,
    resolution: int,
    as_json: bool,
) -> None:
    """Run IMAGE's userspace under a cgroup memory limit and measure what it uses.

    The image is unpacked into a tmpfs charged to a fresh memory cgroup (capped at half the
    limit, like the kernel's rootfs), then its init runs in new user, mount, pid, ipc, uts and
    network namespaces with the image as its root. Needs root. Exit 1 when the run failed
    under its limit (OOM, unpack failure, timeout).
    """
    from footprint.measure.workflow import MeasureRequest, measure_image
    from footprint.report import measure as render
    from footprint.report.progress import with_progress

    request = MeasureRequest(image, memory, runner, bisect_range, resolution)
    run = with_progress(lambda progress: measure_image(request, progress), request.bisect)
    output(render.measure_run_dict(run), as_json, render.measurement_text)
    if not run.succeeded:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("image", type=FILE)
@opt("memory-boot")
@opt("json")
@qemu_options
def boot(image: str, memory: int, as_json: bool, qemu: QemuOptions) -> None:
    """Boot IMAGE with KERNEL in QEMU with a memory probe, and say what happened.

    Outcomes: success, unpack-failed, oom, panic, timeout (exit 1 unless success).
    """
    from footprint.measure.workflow import boot_image
    from footprint.report import boot as render

    run = boot_image(image, memory, qemu)
    output(render.boot_run_dict(run), as_json, render.boot_text)
    if not run.result.succeeded:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True, type=FILE)
@calibrate_options
@opt("format-crashkernel")
@opt("json")
@reading_options("kernel-profile", "rules")
@kernels_qemu_options
def calibrate(
    images: tuple[str, ...],
    settings: CalibrateSettings,
    fmt: str,
    as_json: bool,
    reading: ProfileOptions,
    qemus: tuple[QemuOptions, ...],
) -> None:
    """The smallest RAM with which IMAGE boots, and the crashkernel= to reserve.

    Bisects QEMU's -m from bounds set by the static model, then prints the recommended
    reservation with its terms, next to the model and kdumpctl's formula. With --without or
    --ablate-all, also what removing components really saves, next to the model's marginal.
    With several --kernel, each kernel with its own IMAGE (in the same order) or all with one,
    and a table of the minimum per kernel.
    """
    from footprint.measure.workflow import calibrations
    from footprint.report import boot, kernels
    from footprint.report.progress import with_progress

    asked = calibrations(images, qemus, settings, reading.rules_file, reading.runtime)
    runs = with_progress(asked.run)
    if len(runs) == 1:
        output(boot.calibrate_run_dict(runs[0], fmt), as_json, boot.calibration_text)
    else:
        output(kernels.kernels_dict(runs, fmt), as_json, kernels.kernels_text)
    if any(r.direct.bisection.minimum_bytes is None for r in runs):
        raise click.exceptions.Exit(1)


@cli.command(name="calibrate-kernel")
@click.argument("vmlinuz", type=FILE)
@opt("output", required=True, help="Write the kernel profile here ('-': standard output).")
@opt("modules-dir")
@opt("module")
@options("resolution", "timeout", "accel")
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
    from footprint.report.measure import kernel_trial_line

    request = kc.Request(vmlinuz, modules_dir, modules or kc.MODULES, resolution, accel, timeout)
    k = kc.calibrate_kernel(request, lambda name, t: note(kernel_trial_line(name, t)))
    save(output, k.to_json(), f"{k.kernel.release}, {k.boots} boots in {k.duration_s:.0f} s")


@cli.command(name="diff")
@click.argument("old", type=FILE)
@click.argument("new", type=FILE)
@opt("raw")
@opt("min-change")
@options("json", "markdown")
@opt("top", default=25, help="Rows per section (0: all).")
@reading_options("kernel", "page-size", "rules")
def diff_cmd(
    old: str,
    new: str,
    raw: bool,
    min_change: int,
    as_json: bool,
    markdown: bool,
    top: int,
    reading: ProfileOptions,
) -> None:
    """What grew between OLD and NEW (each an image or a saved profile)."""
    from footprint.gate.diff import diff
    from footprint.report import diff as render

    changes = diff(reading.open(old), reading.open(new), raw=raw, min_change=min_change)
    doc = render.diff_dict(changes)
    text = render.diff_markdown if markdown else render.diff_text
    output(doc, as_json, lambda d: text(d, top))


@cli.command()
@click.argument("image", type=FILE)
@opt("output", required=True, help="Write the baseline here ('-': standard output).")
@reading_options("kernel", "page-size", "rules")
def baseline(image: str, output: str, reading: ProfileOptions) -> None:
    """Save IMAGE's profile as the baseline a later `check --baseline` compares against."""
    save(output, reading.open(image).to_json(), "the baseline")


@cli.command()
@click.argument("image", type=FILE)
@opt("budget")
@opt("baseline")
@options("json", "markdown")
@opt("junit")
@reading_options("kernel", "kernel-profile", "page-size", "rules")
def check(
    image: str,
    budget_file: str,
    baseline: str | None,
    as_json: bool,
    markdown: bool,
    junit: str | None,
    reading: ProfileOptions,
) -> None:
    """The CI gate: does IMAGE (or a saved profile, or a `merge` matrix) fit its budget?
    Exit 1 if not.

    A matrix is gated cell by cell, each verdict named by its cell. With
    $GITHUB_STEP_SUMMARY set, the Markdown table is appended to it.
    """
    from footprint.gate.budget import check as gate
    from footprint.gate.budget import failed, load_budget
    from footprint.report import check as render

    budget = load_budget(budget_file)
    e = gate(budget, image, reading.open, baseline)
    bad = failed(e.verdicts, budget)
    doc = render.check_dict(image, e, bad, budget.mode)
    if junit:
        write(junit, render.check_junit(doc))
    warning = render.append_step_summary(doc, os.environ.get("GITHUB_STEP_SUMMARY"))
    if warning:  # the verdict still stands, and is still printed
        note(f"footprint: warning: {warning}")
    output(doc, as_json, render.check_markdown if markdown else render.check_text)
    if bad:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("profiles", nargs=-1, required=True, type=FILE)
@opt("output", help="Write the report here ('-' or none: standard output).")
@opt("markdown-report")
@opt("text-report")
@opt("label")
@opt("timeline")
@opt("calibration")
@opt("crashkernel")
@opt("machine-ram")
@reading_options("kernel")
def report(
    profiles: tuple[str, ...],
    output: str | None,
    markdown: bool,
    text: bool,
    labels: tuple[str, ...],
    timelines: tuple[str, ...],
    calibrations: tuple[str, ...],
    crashkernel: str,
    machine_ram: int,
    reading: ProfileOptions,
) -> None:
    """A per-release report over PROFILES (oldest first; images or saved profiles): one
    self-contained HTML page (plotly.js inline, no network fetches) or Markdown.

    The totals per release, an interactive size map and a searchable table of every file of
    the latest release, the diffs between consecutive releases (as `footprint diff`), the
    reservation's terms against the --crashkernel line, and measured timelines.

    A matrix (`footprint merge`) is one table instead, a row per cell: every architecture,
    kernel, image, mode and machine shape (HTML, --markdown or --text).
    """
    from footprint.report import releases

    page = releases.render(
        profiles,
        reading.open,
        given_labels=labels,
        timelines=timelines,
        calibrations=calibrations,
        crashkernel=crashkernel,
        ram=machine_ram,
        fmt="text" if text else "markdown" if markdown else "html",
    )
    save(output, page)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=FILE)
@opt("output", help="Write the matrix here ('-' or none: standard output; never an input).")
def merge(results: tuple[str, ...], output: str | None) -> None:
    """Combine RESULTS (calibrate, boot and measure --json documents, profiles, or matrices)
    from many machines into one matrix document, for `report` and `check`.

    Each cell keeps its document, with its axes read from it: arch, kernel release, image,
    mode (direct, kdump, cgroup, profile), machine shape or cgroup limit. Exit 5 on two
    results on the same axes, one image name (or kernel release) holding two different ones,
    or mixed schema versions.
    """
    from footprint.gate.merge import matrix_json, merge_files

    doc = merge_files(results, output)
    save(output, matrix_json(doc), f"{len(doc['cells'])} cells")


@cli.command()
@click.argument("kind", type=click.Choice(KINDS))
def schema(kind: str) -> None:
    """Print the JSON Schema (draft 2020-12) of the documents of KIND that footprint writes."""
    from footprint.schemas import schema as schema_of

    emit_json(schema_of(kind))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; the only place that exits."""
    cli.main(args=argv, prog_name="footprint")
