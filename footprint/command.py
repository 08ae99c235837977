"""What every `footprint` command shares: its options declared once, the parameter types, the
output streams, and the group that maps every outcome to its documented exit code.

cli.py declares the commands from these pieces; nothing here knows what a command does.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

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
  3  bad or unsupported image, or a document that is not a valid profile
  4  this machine cannot do what was asked (not root, no cgroup, no qemu, no kernel)
  5  merge conflict (two results on the same axes, one image name with two sha256s,
     or different schema versions)
  70 internal error (a bug in footprint: please report it)
  130/143 interrupted (SIGINT) / terminated (SIGTERM)
"""


# --- output ------------------------------------------------------------------------------------


def emit(text: str) -> None:
    """`text` on standard output; a closed pipe is fine, a full disk is one line (exit 4)."""
    from footprint.paths import shown

    try:
        sys.stdout.write(shown(text))
        sys.stdout.flush()
    except OSError as e:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere
        if not isinstance(e, BrokenPipeError):  # `footprint inspect … | head` is fine
            raise EnvironmentUnavailable(f"cannot write the output: {e.strerror or e}") from None


def emit_json(doc: dict[str, Any]) -> None:
    from footprint.paths import json_text

    emit(json_text(doc) + "\n")


def output(doc: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> None:
    """The document as JSON, or rendered by `text`."""
    emit_json(doc) if as_json else emit(text(doc))


def write(path: str, text: str) -> None:
    """`text` into `path` whole or not at all; "-" is standard output."""
    from footprint.paths import shown

    if path == "-":
        emit(text)
        return
    from footprint.report.files import write_atomically

    write_atomically(path, shown(text))


def save(path: str | None, text: str, what: str = "") -> None:
    """`text` into `path` ("-" or none: standard output); a file written is noted, with `what`."""
    write(path or "-", text)
    if path not in (None, "-"):
        note(f"wrote {path}" + (f": {what}" if what else ""))


def note(text: str) -> None:
    """One line for the user on standard error (what was written, a warning)."""
    click.echo(text, err=True)


# --- parameter types ---------------------------------------------------------------------------


class Size(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """128M, 1G, 512K or a plain number of bytes, as bytes."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        from footprint.units import parse_size

        if isinstance(value, int):
            return value
        try:
            return parse_size(value)
        except (ValueError, OverflowError) as e:
            why = str(e) if str(e).startswith(repr(value)) else f"{value!r} is not a size"
            self.fail(f"{why} (like 256M, 1G)", param, ctx)


class SizeRange(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """LOW:HIGH as two sizes in bytes, or "auto" (bounds from the static model) as None."""

    name = "range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value in (None, "auto") or isinstance(value, tuple):
            return value
        low, sep, high = str(value).partition(":")
        if not sep:
            self.fail(f"{value!r} is not LOW:HIGH (like 64M:512M)", param, ctx)
        return (SIZE.convert(low, param, ctx), SIZE.convert(high, param, ctx))


class ListOf(click.ParamType):  # type: ignore[type-arg,unused-ignore]
    """A comma-separated list of `item`s (2G,8G or 1,4) as a tuple, each checked by `item`."""

    def __init__(self, item: Any) -> None:
        self.item = item
        self.name = f"{item.name}[,{item.name}…]"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        parts = [p.strip() for p in str(value).split(",")]
        if not all(parts):
            self.fail(f"{value!r} has an empty item (like 2G,8G)", param, ctx)
        return tuple(self.item.convert(p, param, ctx) for p in parts)


class PageSize(click.IntRange):
    """A page size: a power of two, 512 or more."""

    name = "bytes"

    def __init__(self) -> None:
        super().__init__(min=512)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        size = super().convert(value, param, ctx)
        if size & (size - 1):
            self.fail(f"{size} is not a power of two", param, ctx)
        return size


SIZE = Size()
FILE = click.Path(dir_okay=False)
OUTPUT = click.Path(dir_okay=False, allow_dash=True)  # "-": standard output
ACCEL = click.Choice(["auto", "kvm", "tcg"])
TOP = click.IntRange(min=0)

# --- every option, declared once (mkosi's way): decls and defaults; a command may override -----


def option(*decls: str, **attrs: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One entry of OPTIONS: click.option's arguments, applied by opt()."""
    return decls, attrs


OPTIONS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "json": (("--json", "as_json"), {"is_flag": True, "help": "Print the JSON document."}),
    "markdown": (("--markdown",), {"is_flag": True, "help": "Print Markdown instead of text."}),
    "top": (("--top",), {"type": TOP, "default": 0, "help": "Rows to show (0: all)."}),
    "top-components": (
        ("--top",),
        {
            "type": TOP,
            "default": 0,
            "help": "Print only the first N components and shared libraries, or --by "
            "package/file rows (0: all; --json lists all).",
        },
    ),
    "output": (("-o", "--output"), {"type": OUTPUT, "help": "Write it here ('-': stdout)."}),
    "page-size": (
        ("--page-size",),
        {"type": PageSize(), "default": 4096, "help": "The capture's page size."},
    ),
    "rules": (
        ("--rules", "rules_file"),
        {"type": FILE, "help": "TOML component rules, tried before the built-in ones."},
    ),
    "kernel": (
        ("--kernel",),
        {"type": FILE, "help": "The capture kernel (bzImage, UKI or vmlinux), for its term."},
    ),
    "kernel-profile": (
        ("--kernel-profile",),
        {
            "type": FILE,
            "help": "A kernel profile (`calibrate-kernel -o kernel.json`): the prediction adds "
            "its measured runtime terms (without one it is the static floor).",
        },
    ),
    "resolution": (("--resolution",), {"type": SIZE, "default": "4M"}),
    "timeout": (("--timeout",), {"type": float, "default": 120.0, "help": "Seconds per run."}),
    "accel": (("--accel",), {"type": ACCEL, "default": "auto", "help": "auto: KVM if it boots."}),
    "until": (("--until",), {"help": "Success when this regular expression is on the console."}),
    "cmdline": (("--cmdline",), {"help": "The kernel command line, replaced entirely."}),
    # one command's own
    "files": option("--files", is_flag=True, help="List every path of the unpacked tree."),
    "sort-inspect": option(
        "--sort",
        type=click.Choice(["image", "name", "size"]),
        default="image",
        help="Order of the --files listing.",
    ),
    "force": option("--force", is_flag=True, help="Extract into a directory that is not empty."),
    "devices": option(
        "--devices",
        is_flag=True,
        help="Create device nodes (needs root); without it they are skipped and listed.",
    ),
    "by": option(
        "--by",
        type=click.Choice(["component", "dracut-module", "package", "file", "firmware"]),
        default="component",
        help="What to group the image's files by.",
    ),
    "owner-db": option(
        "--owner-db",
        "owner_db",
        multiple=True,
        metavar="dpkg|ROOT|CONTENTS|none",
        help="With --by package or file: where to look up files' packages, besides ELF package "
        "notes and the kernel's modules: dpkg (this host's database: used by itself when it ships "
        "the image's kernel), ROOT (the root the image was built in, with var/lib/dpkg/info), "
        "CONTENTS (a Debian Contents-<arch> index, plain, .gz, .xz or apt-file's .lz4) or none. "
        "Repeat it to ask several, in turn.",
    ),
    "sort-components": option(
        "--sort",
        type=click.Choice(
            ["proportional", "marginal", "own", "shared", "compressed", "files", "name"]
        ),
        default="proportional",
        help="Order of the components in the text (largest first; name: alphabetical).",
    ),
    "suggest": option(
        "--suggest",
        is_flag=True,
        help="Also list what a capture kernel dumping to a local disk does without.",
    ),
    "memory-measure": option(
        "--memory", type=SIZE, default="512M", help="The cgroup limit (userspace's RAM)."
    ),
    "bisect": option(
        "--bisect",
        "bisect_range",
        type=SizeRange(),
        is_flag=False,
        flag_value="auto",
        help="Find the smallest limit that still succeeds: --bisect or --bisect LOW:HIGH.",
    ),
    "memory-boot": option("--memory", type=SIZE, default="512M", help="The VM's RAM (-m)."),
    "ram": option(
        "--ram",
        "rams",
        type=ListOf(SIZE),
        help="With --kdump: the first kernel's RAM, one machine shape each (like 2G,8G,64G); "
        "the minima make a ranged crashkernel= line (default: 2G with --root-disk, else 3G).",
    ),
    "cpus": option(
        "--cpus",
        type=ListOf(click.IntRange(min=1, max=64)),
        default="1",
        help="With --kdump: the machine's CPUs (QEMU's -smp), each with every --ram.",
    ),
    "cma": option(
        "--cma",
        is_flag=True,
        help="With --kdump: also split the reservation into crashkernel=X (what kexec -p "
        "loads) and crashkernel=Y,cma (the rest, usable by the first kernel until a crash); "
        "Linux 6.17+ with CONFIG_CMA, refused (exit 4) on a kernel without it.",
    ),
    "jobs": option(
        "--jobs",
        type=click.IntRange(min=0),
        default=0,
        help="Machine shapes calibrated at once (0: what this machine's CPUs and memory hold).",
    ),
    "format-crashkernel": option(
        "--format",
        "fmt",
        type=click.Choice(["kernel", "kdump-tools", "kdump-utils", "grub"]),
        default="kernel",
        help="How to print the measured crashkernel= line: as the kernel takes it, or as "
        "kdump-tools', kdump-utils' (grubby) or GRUB's configuration expects it.",
    ),
    "repeat": option(
        "--repeat",
        type=click.IntRange(min=1),
        default=None,
        help="Repeat the boundary trials this many times and report the spread (default: 1; "
        "3 for trials that save a dump on --root-disk, whose boundary is not deterministic).",
    ),
    "without": option(
        "--without",
        multiple=True,
        help="Also calibrate a copy without this component "
        "(and its exclusive libraries); repeatable: removed together.",
    ),
    "ablate-all": option(
        "--ablate-all",
        is_flag=True,
        help="Calibrate without each removable component in turn and tabulate.",
    ),
    "kdump": option(
        "--kdump",
        is_flag=True,
        help="Also bisect crashkernel= with a real crash: a first kernel loads the image with "
        "kexec -p and panics; the capture kernel boots in the reservation.",
    ),
    "modules-dir": option(
        "--modules-dir",
        type=click.Path(file_okay=False),
        help="The kernel's modules (default: /lib/modules/<its release>).",
    ),
    "module": option(
        "--module",
        "modules",
        multiple=True,
        help="A module to insmod for the per-module term (repeatable; dependencies follow "
        "modules.dep). Default: crc32c_generic, xfs, btrfs, amdgpu.",
    ),
    "raw": option("--raw", is_flag=True, help="Match paths as they are (no version folding)."),
    "min-change": option(
        "--min-change", type=SIZE, default="0", help="Hide changes smaller than this (4K)."
    ),
    "budget": option(
        "--budget",
        "budget_file",
        required=True,
        type=FILE,
        help="The budget (TOML; see the README).",
    ),
    "baseline": option(
        "--baseline",
        type=FILE,
        help="A profile (or image) to compare against, for [baseline] limits.",
    ),
    "junit": option(
        "--junit", type=FILE, help="Also write JUnit XML here (one testcase per line)."
    ),
    "markdown-report": option("--markdown", is_flag=True, help="Markdown instead of HTML."),
    "text-report": option(
        "--text", is_flag=True, help="A `merge` matrix as a plain text table instead of HTML."
    ),
    "label": option(
        "--label",
        "labels",
        multiple=True,
        help="A label per profile, in order (default: the image's file name).",
    ),
    "timeline": option(
        "--timeline",
        "timelines",
        multiple=True,
        type=FILE,
        help="A `measure --json` or `boot --json` document whose timeline to plot.",
    ),
    "calibration": option(
        "--calibration",
        "calibrations",
        multiple=True,
        metavar="[LABEL=]FILE",
        help="A `calibrate --json` document: its measured terms and minima join the release "
        "LABEL's reservation (default: the latest release's).",
    ),
    "crashkernel": option(
        "--crashkernel",
        default="512M-:192M",
        help="The crashkernel= line to draw "
        "against the reservation (the default is Debian amd64 kdump-tools').",
    ),
    "machine-ram": option(
        "--machine-ram",
        type=SIZE,
        default="4G",
        help="The first kernel's RAM, to pick the --crashkernel range that applies.",
    ),
}


def opt(name: str, **overrides: Any) -> Callable[[Any], Any]:
    """The option `name` of OPTIONS, with this command's own default or help."""
    decls, attrs = OPTIONS[name]
    return click.option(*decls, **{**attrs, **overrides})


def options(*names: str) -> Callable[[Any], Any]:
    """Several options of OPTIONS, as they are, in the order given."""

    def apply(f: Any) -> Any:
        for name in reversed(names):
            f = opt(name)(f)
        return f

    return apply


def gather(into: str, make: Callable[..., Any], fields: dict[str, Any]) -> Callable[[Any], Any]:
    """Declare the options `fields` (parameter name → option) and hand them to the command as
    one typed object, `into=make(**values)`, instead of one parameter each."""

    def apply(f: Any) -> Any:
        @functools.wraps(f)
        def command(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name in fields}
            return f(**{into: make(**values)}, **kwargs)

        for decorate in reversed(fields.values()):
            command = decorate(command)
        return command

    return apply


def _qemu(arch: str | None, **values: Any) -> Any:
    from footprint.measure.qemu import QemuOptions, resolve_arch

    return QemuOptions(arch=resolve_arch(values["kernel"], arch), **values)


def _cgroup(run: str | None, rdinit: str, cmdline: str | None, **values: Any) -> Any:
    import shlex

    from footprint.measure.runner import DEFAULT_CMDLINE, CgroupOptions

    argv = tuple(shlex.split(run)) if run else (rdinit,)
    return CgroupOptions(argv=argv, cmdline=cmdline or DEFAULT_CMDLINE, **values)


def _reading(**values: Any) -> Any:
    from footprint.profile import ProfileOptions

    return ProfileOptions(**values)


def _qemu_each(kernel: tuple[str, ...], **values: Any) -> Any:
    return tuple(_qemu(kernel=k, **values) for k in kernel)


# A QEMU boot's options, handed to the command as `qemu: QemuOptions`.
QEMU_FIELDS: dict[str, Any] = {
    "kernel": opt("kernel", required=True, help="The capture kernel: a bzImage or a UKI."),
    "append": click.option("--append", default="", help="Added to the kdump-like cmdline."),
    "cmdline": opt("cmdline"),
    "until": opt(
        "until",
        help="Success when this regular expression is on the console "
        "(default: init settled, or finished).",
    ),
    "timeout": opt("timeout"),
    "init": click.option("--rdinit", "init", default="/init", help="The image's init."),
    "accel": opt("accel"),
    "root_disk": click.option(
        "--root-disk",
        type=FILE,
        help="A raw or qcow2 root disk, attached (virtio) through a copy-on-write overlay "
        "per boot; with --kdump success is a dump saved on it.",
    ),
    "root": click.option(
        "--root", help="root= for the boot (default: from --root-disk's layout: /dev/vda[N])."
    ),
    "arch": click.option(
        "--arch",
        type=click.Choice(["x86_64", "aarch64", "ppc64le", "s390x"]),
        help="The architecture to boot (default: the kernel's own, read from its image; "
        "given, it must agree with what the image says).",
    ),
    "stage1_root": click.option(
        "--stage1-root",
        type=click.Path(exists=True, file_okay=False),
        help="--kdump: a root of the kernel's architecture whose static busybox and kexec "
        "the stage-1 initrd runs (default: the host's for its own architecture; for "
        "another, a root/ directory beside the kernel, as build-arm64.sh makes).",
    ),
}
qemu_options = gather("qemu", _qemu, QEMU_FIELDS)
# The same for kernels side by side, one QemuOptions per --kernel: `qemus: tuple[...]`.
kernels_qemu_options = gather(
    "qemus",
    _qemu_each,
    {
        **QEMU_FIELDS,
        "kernel": opt(
            "kernel",
            required=True,
            multiple=True,
            help="The capture kernel: a bzImage or a UKI; repeat it to calibrate kernels side "
            "by side, each with its own IMAGE (or all with one).",
        ),
    },
)


# What `measure` runs in its sandbox, handed to it as `runner: CgroupOptions`.
cgroup_options = gather(
    "runner",
    _cgroup,
    {
        "run": click.option(
            "--run",
            help="Run this instead of the image's /init, e.g. "
            "\"/bin/sh -c '…'\" (split like a shell would).",
        ),
        "rdinit": click.option("--rdinit", default="/init", help="The image's init."),
        "until": opt(
            "until", help="Stop with success when this regular expression appears on the console."
        ),
        "timeout": opt("timeout", default=60.0, help="Seconds."),
        "interval": click.option(
            "--interval", type=float, default=0.05, help="Sampling interval in seconds."
        ),
        "cmdline": opt("cmdline", help="The kernel command line the image sees in /proc/cmdline."),
    },
)


def _calibrate_settings(**values: Any) -> Any:
    from footprint.measure.workflow import CalibrateSettings

    return CalibrateSettings(**values)


# What `calibrate` is asked, alike for every kernel, handed to it as `settings`.
calibrate_options = gather(
    "settings",
    _calibrate_settings,
    {
        name.replace("-", "_"): opt(name)
        for name in ("resolution", "repeat", "without", "ablate-all", "kdump")
    }
    | {"rams": opt("ram"), "cpus": opt("cpus"), "cma": opt("cma"), "jobs": opt("jobs")},
)


def reading_options(*names: str) -> Callable[[Any], Any]:
    """How an image becomes a profile (`names` of kernel, kernel-profile, page-size, rules),
    handed to the command as `reading: ProfileOptions`."""
    fields = {
        "kernel": "kernel",
        "kernel-profile": "kernel_profile",
        "page-size": "page_size",
        "rules": "rules_file",
    }
    return gather("reading", _reading, {fields[name]: opt(name) for name in names})


# --- the group ---------------------------------------------------------------------------------


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
            note(f"footprint: error: {e.format_message()}{where}")
            sys.exit(e.exit_code)
        except click.ClickException as e:
            e.show()
            sys.exit(e.exit_code)
        except click.exceptions.Abort:  # Ctrl-C while click parses the command line
            note("footprint: interrupted")
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FootprintError as e:
            note(f"footprint: error: {e}")
            ctx.exit(e.exit_code)
        except KeyboardInterrupt:
            note("footprint: interrupted")
            ctx.exit(EXIT_INTERRUPTED)
        except Terminated as e:
            note("footprint: terminated")
            ctx.exit(e.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: one line by default, the traceback on request
            if os.environ.get("FOOTPRINT_DEBUG"):
                raise
            note(
                f"footprint: internal error: {type(e).__name__}: {e} (set "
                "FOOTPRINT_DEBUG=1 for the traceback, and please report it)"
            )
            ctx.exit(EXIT_INTERNAL)
