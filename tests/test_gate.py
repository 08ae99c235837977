"""diff, baseline and check: budgets that pass, warn and fail, JUnit and Markdown read back."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, real_image

from footprint.cli import cli
from footprint.gate.diff import normalise
from footprint.image.cpio import newc_entry, newc_trailer
from footprint.model.predict import FLOOR_WARNING

SMALL = str(SAMPLES / "busybox-gzip.img")
EARLY = str(SAMPLES / "busybox-early-zstd.img")


def run(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(cli, list(args), env=env)


def test_normalise_folds_versions() -> None:
    assert normalise("/usr/lib/modules/6.1.0-56-amd64/kernel/fs/ext4/ext4.ko") == normalise(
        "/lib/modules/6.12.9-amd64/kernel/fs/ext4/ext4.ko"
    )
    assert normalise("usr/lib/x86_64-linux-gnu/libcrypto.so.3.0.11") == normalise(
        "usr/lib/x86_64-linux-gnu/libcrypto.so.3.0.15"
    )
    assert normalise("usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-252.so") == normalise(
        "usr/lib/x86_64-linux-gnu/systemd/libsystemd-shared-257.so"
    )
    assert normalise("lib/firmware/iwlwifi-8000C-36.ucode") == normalise(
        "lib/firmware/iwlwifi-8000C-34.ucode"
    )
    assert normalise("lib/modules/6.1.0/x.ko", raw=True) == "lib/modules/6.1.0/x.ko"


def test_diff_of_two_samples(tmp_path) -> None:
    base = tmp_path / "base.json"
    assert run("baseline", SMALL, "-o", str(base)).exit_code == 0
    r = run("diff", str(base), EARLY, "--json")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["kind"] == "diff" and doc["schema_version"] == 1
    assert doc["files"] == [
        {
            "name": "kernel/x86/microcode/GenuineIntel.bin",
            "old": 0,
            "new": 4096,
            "delta": 4096,
            "change": "added",
        }
    ]
    assert doc["summary"] == {
        "added": 1,
        "removed": 0,
        "grown": 0,
        "shrunk": 0,
        "up_bytes": 4096,
        "down_bytes": 0,
        "net_bytes": 4096,
    }
    text = run("diff", str(base), EARLY).stdout
    assert text.splitlines()[1].startswith("add/remove:")
    row = (
        f"  {'kernel/x86/microcode/GenuineIntel.bin':<58} {'new':>10} {'4 KiB':>10} {'+4 KiB':>10}"
    )
    assert row in text.splitlines()  # a new file is new, not "0 B"
    md = run("diff", str(base), EARLY, "--markdown").stdout
    assert md.startswith("### footprint diff") and "| name | old | new | delta |" in md


def test_diff_pairs_segments_by_codec_not_index() -> None:
    """An early cpio put in front: the zstd archive changed, a plain one is new — not every
    segment gone and new because the indexes moved."""
    old, new = str(SAMPLES / "small-zstd.img"), str(SAMPLES / "busybox-early-zstd.img")
    r = CliRunner().invoke(cli, ["diff", "--json", old, new])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["segments"] == [
        {"name": "zstd", "old": 3616, "new": 924734, "delta": 921118, "change": "grown"},
        {"name": "none", "old": 0, "new": 4856, "delta": 4856, "change": "added"},
    ]


def test_diff_rejects_a_json_that_is_not_a_profile(tmp_path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text('{"hello": 1}')
    r = run("diff", str(bogus), SMALL)
    assert r.exit_code == 3 and "not a footprint profile" in r.output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(totals="big"), "Expected `object`, got `str` - at `$.totals`"),
        (lambda d: d.pop("image"), "Object missing required field `image`"),
        (lambda d: d["totals"].update(files=-3), "files = -3 is negative - at `$.totals`"),
        (lambda d: d["total"].update(bytes=-1), "Expected `int` >= 0 - at `$.total.bytes`"),
        (
            lambda d: d["components"][0].update(proportional_bytes="0x10"),
            "Expected `int`, got `str` - at `$.components[0].proportional_bytes`",
        ),
        (lambda d: d.update(schema_version=2), "has schema_version 2; this footprint reads"),
        (lambda d: d.update(kind="diff"), "is not a footprint profile"),
    ],
)
def test_a_malformed_profile_is_one_line_and_exit_3(tmp_path, change, message) -> None:
    good = tmp_path / "good.json"
    assert run("profile", SMALL, "-o", str(good)).exit_code == 0
    doc = json.loads(good.read_text())
    change(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    for args in (["diff", str(bad), SMALL], ["components", str(bad)], ["report", str(bad)]):
        r = run(*args)
        assert r.exit_code == 3, (args, r.output)
        assert r.output.count("\n") == 1 and message in r.output, r.output


def test_infinity_is_not_a_size(tmp_path) -> None:
    good = tmp_path / "good.json"
    assert run("profile", SMALL, "-o", str(good)).exit_code == 0
    bad = tmp_path / "bad.json"
    bad.write_text(good.read_text().replace('"padding_bytes": 0', '"padding_bytes": -Infinity'))
    budget = tmp_path / "b.toml"
    budget.write_text('[limits]\ncompressed_bytes = "40M"\n')
    r = run("check", str(bad), "--budget", str(budget))
    assert r.exit_code == 3 and "is not valid JSON" in r.output, r.output


def _profile(tmp_path: Path, image: str) -> dict:
    out = tmp_path / "p.json"
    assert run("profile", image, "-o", str(out)).exit_code == 0
    return json.loads(out.read_text())


def test_budget_pass_warn_fail_and_report_mode(tmp_path) -> None:
    p = _profile(tmp_path, SMALL)
    size = p["image"]["bytes"]
    budget = tmp_path / "budget.toml"
    budget.write_text(f"[limits]\ncompressed_bytes = {size + 1}\nwarn_percent = 99.9\n")
    warn = run("check", SMALL, "--budget", str(budget), "--json")
    assert warn.exit_code == 0
    assert json.loads(warn.stdout)["verdicts"][0]["status"] == "warn"
    one_percent_below = int(size * 0.99)
    budget.write_text(f"[limits]\ncompressed_bytes = {one_percent_below}\n")
    junit = tmp_path / "junit.xml"
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    fail = run(
        "check",
        SMALL,
        "--budget",
        str(budget),
        "--junit",
        str(junit),
        env={"GITHUB_STEP_SUMMARY": str(summary)},
    )
    assert fail.exit_code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1"
    case = suite.find("testcase")
    assert case is not None and case.find("failure") is not None
    md = summary.read_text()
    assert md.startswith("earlier step\n") and "### footprint check" in md and "❌" in md
    budget.write_text(
        f'[budget]\nmode = "report"\n[limits]\ncompressed_bytes = {one_percent_below}\n'
    )
    assert run("check", SMALL, "--budget", str(budget)).exit_code == 0


def test_baseline_relative_limits(tmp_path) -> None:
    base = tmp_path / "base.json"
    assert run("baseline", SMALL, "-o", str(base)).exit_code == 0
    budget = tmp_path / "b.toml"
    budget.write_text("[baseline]\nwarn_percent = 0.1\nerror_percent = 50\nmin_change = 0\n")
    same = run("check", SMALL, "--budget", str(budget), "--baseline", str(base), "--json")
    assert same.exit_code == 0
    assert all(v["status"] == "pass" for v in json.loads(same.stdout)["verdicts"])
    grown = run("check", EARLY, "--budget", str(budget), "--baseline", str(base), "--json")
    statuses = {v["name"]: v["status"] for v in json.loads(grown.stdout)["verdicts"]}
    assert statuses == {
        "baseline compressed_bytes": "pass",  # zstd instead of gzip: smaller
        "baseline unpacked_bytes": "warn",  # +4096 bytes, +0.21 % > 0.1 %
        "baseline page_rounded_bytes": "warn",
        "baseline static_estimate_bytes": "pass",
        "baseline component base-config": "pass",
        "baseline component busybox": "pass",
        "baseline component microcode": "fail",  # from nothing to something
        "baseline component unknown": "pass",
    }
    microcode = next(
        v for v in json.loads(grown.stdout)["verdicts"] if v["name"].endswith("microcode")
    )
    assert microcode["message"] == "new: 4096 bytes, absent from the baseline"  # no +100 %
    assert grown.exit_code == 1
    budget.write_text('[baseline]\nwarn_percent = 1\nerror_percent = 50\nmin_change = "1M"\n')
    small_change = run("check", EARLY, "--budget", str(budget), "--baseline", str(base))
    assert small_change.exit_code == 0  # every change is below min_change


@pytest.mark.parametrize(
    "text, words",
    [
        ('[limits]\ncompressed_bytes = "lots"\n', "not a size"),
        ("[limits]\nfancy_bytes = 1\n", "b.toml: limits: unknown key `fancy_bytes`"),
        ("[limits]\ncomponents = 3\n", "limits.components: Expected `object`, got `int`"),
        ('[limits]\nwarn_percent = "95"\n', "limits.warn_percent: Expected `float`, got `str`"),
        ("[limits]\nwarn_percent = nan\n", "limits.warn_percent: Expected `float` >= 0.0"),
        ("[limits]\nwarn_percent = inf\n", "limits.warn_percent = inf is not a number"),
        ("[limits.components]\nudev = { a = 1 }\n", "limits.components[...]: Expected"),
        ('[limits.components]\nudev = "-Infinity"\n', "limits.components.udev = '-Infinity'"),
        ("[budget]\n", "has no checks: add [limits]"),
        ('[limits]\ncompressed_bytes = "40 MB"\n', "'40 MB' is ambiguous: write 40 MiB or bytes"),
        ('[limits]\ncompressed_bytes = "-1M"\n', "compressed_bytes = '-1M' is negative"),
        ("[limits]\ncompressed_bytes = 1\nwarn_percent = 150\n", "warn_percent = 150 is above 100"),
        ("[baseline]\nwarn_percent = 6\n", "baseline.warn_percent (6) is above error_percent (5)"),
        (
            '[limits.components]\nsystemd = "8M"\n',
            "limits.components.systemd: no component 'systemd' in ",
        ),
        ("budget = 3\n", "budget: Expected `object`, got `int`"),
        ('[baseline]\nmin_change = "0x10"\n', "baseline.min_change = '0x10' is not a size"),
        ('[baseline]\nmetrics = ["files"]\n', "baseline.metrics[0]: Invalid enum value 'files'"),
        ("[nonsense]\n", "unknown section"),
        ('[budget]\nmode = "maybe"\n', "mode"),
        ("[limits\n", "TOML"),
    ],
)
def test_bad_budgets_are_usage_errors(tmp_path, text: str, words: str) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text(text)
    r = run("check", SMALL, "--budget", str(budget))
    assert r.exit_code == 2 and words in r.output, r.output
    assert r.output.count("\n") == 1  # one line


@pytest.mark.integration
def test_kdump_tools_vs_most_top_growers_are_modules() -> None:
    dep = real_image("kdump-tools.img")
    most = real_image("initramfs-tools-zstd.img")
    doc = json.loads(run("diff", str(dep), str(most), "--json").stdout)
    top = [c["name"] for c in doc["components"][:3]]
    assert all(n.startswith(("modules-", "firmware")) for n in top)
    assert all(f["name"].startswith("lib/modules/") for f in doc["files"][:10])
    totals = {t["name"]: t for t in doc["totals"]}
    for image, side in ((dep, "old"), (most, "new")):
        inspected = json.loads(run("inspect", "--json", str(image)).stdout)
        assert totals["page_rounded_bytes"][side] == inspected["totals"]["page_rounded_bytes"]
        assert totals["compressed_bytes"][side] == inspected["image"]["bytes"]


def _kernel() -> str:
    from conftest import need

    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    return str(kernels[-1])


def test_a_profile_says_what_it_was_made_with(tmp_path) -> None:
    out = tmp_path / "p.json"
    r = run("profile", SMALL, "-o", str(out))
    assert r.exit_code == 0
    assert r.stderr.splitlines()[1:] == [
        "footprint: warning: no kernel term: the static estimate leaves out the capture "
        "kernel's own memory (give --kernel VMLINUZ)",
        f"footprint: warning: {FLOOR_WARNING}",
    ]
    basis = json.loads(out.read_text())["basis"]
    assert basis == {
        "page_size": 4096,
        "kernel": "",
        "rules": "built-in",
        "warnings": [
            "no kernel term: the static estimate leaves out the capture kernel's own memory "
            "(give --kernel VMLINUZ)",
            FLOOR_WARNING,
        ],
    }
    rules = tmp_path / "rules.toml"
    rules.write_text('[[component]]\nname = "shell"\npatterns = ["bin/sh"]\n')
    with_rules = json.loads(run("profile", SMALL, "--rules", str(rules)).stdout)["basis"]
    assert with_rules["rules"].startswith("built-in+sha256:") and len(with_rules["rules"]) == 32


def test_a_profile_without_a_basis_reads_back(tmp_path) -> None:
    saved = tmp_path / "old.json"
    doc = json.loads(run("profile", SMALL).stdout)
    del doc["basis"]  # as the first footprint of schema_version 1 wrote it
    saved.write_text(json.dumps(doc))
    r = run("diff", "--json", str(saved), SMALL)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["warnings"] == [
        "the components were attributed with different rules (unknown -> built-in): a "
        "component may move for that reason alone"
    ]


def test_different_page_sizes_are_refused(tmp_path) -> None:
    r = run("diff", SMALL, EARLY, "--page-size", "4096")
    assert r.exit_code == 0
    big = tmp_path / "big.json"
    assert run("profile", SMALL, "--page-size", "65536", "-o", str(big)).exit_code == 0
    r = run("diff", str(big), EARLY)
    assert r.exit_code == 2
    assert "different page sizes (65536 and 4096)" in r.output and r.output.count("\n") == 1


@pytest.mark.integration
def test_a_kernel_term_on_one_side_only_is_left_out_with_a_warning(tmp_path) -> None:
    kernel = _kernel()
    base = tmp_path / "base.json"
    assert run("baseline", SMALL, "--kernel", kernel, "-o", str(base)).exit_code == 0
    kver = json.loads(base.read_text())["basis"]["kernel"]
    assert kver and json.loads(base.read_text())["basis"]["warnings"] == [FLOOR_WARNING]
    warning = (
        f"static_estimate_bytes left out: the old side has a kernel term ({kver}), the other "
        "has none — give both the same --kernel"
    )
    mixed = json.loads(run("diff", "--json", str(base), EARLY).stdout)
    assert mixed["warnings"] == [warning]
    assert "static_estimate_bytes" not in {t["name"] for t in mixed["totals"]}
    same = json.loads(run("diff", "--json", str(base), EARLY, "--kernel", kernel).stdout)
    assert same["warnings"] == []
    static = {t["name"]: t for t in same["totals"]}["static_estimate_bytes"]
    assert static["old"] > 20 << 20 and abs(static["delta"]) < 1 << 20  # like for like

    budget = tmp_path / "b.toml"
    budget.write_text("[baseline]\nwarn_percent = 1\nerror_percent = 2\n")
    gate = run("check", EARLY, "--budget", str(budget), "--baseline", str(base), "--json")
    doc = json.loads(gate.stdout)
    assert doc["warnings"] == [warning]
    assert "baseline static_estimate_bytes" not in {v["name"] for v in doc["verdicts"]}
    text = run("check", EARLY, "--budget", str(budget), "--baseline", str(base)).stdout
    assert text.splitlines()[-1] == f"warning: {warning}"
    fair = run("check", EARLY, "--budget", str(budget), "--baseline", str(base), "--kernel", kernel)
    names = {
        v["name"]: v["status"]
        for v in json.loads(
            run(
                "check",
                EARLY,
                "--budget",
                str(budget),
                "--baseline",
                str(base),
                "--kernel",
                kernel,
                "--json",
            ).stdout
        )["verdicts"]
    }
    assert names["baseline static_estimate_bytes"] == "pass" and "warning" not in fair.stdout


def test_a_static_estimate_limit_without_a_kernel_warns(tmp_path) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text('[limits]\nstatic_estimate_bytes = "64M"\n')
    doc = json.loads(run("check", SMALL, "--budget", str(budget), "--json").stdout)
    assert doc["warnings"] == [
        "limit static_estimate_bytes: the profile has no kernel term, so the estimate leaves "
        "out the kernel's own memory — give --kernel VMLINUZ"
    ]


@pytest.mark.integration
def test_a_uki_brings_its_own_kernel_and_compares_as_its_initrd() -> None:
    uki = str(real_image("uki.efi"))
    initrd = str(real_image("initramfs-tools-zstd.img"))  # the UKI's .initrd
    profile = json.loads(run("profile", uki).stdout)
    assert profile["reservation"]["kernel_method"] == "elf"
    assert profile["basis"]["kernel"] == profile["kernel_versions"][0]
    assert profile["basis"]["warnings"] == [FLOOR_WARNING]
    doc = json.loads(run("diff", "--json", uki, initrd, "--kernel", _kernel()).stdout)
    assert doc["warnings"] == []
    assert [(t["name"], t["delta"]) for t in doc["totals"]] == [
        ("compressed_bytes", 0),  # the .initrd, not the whole PE file
        ("unpacked_bytes", 0),
        ("page_rounded_bytes", 0),
        ("files", 0),
        ("static_estimate_bytes", 0),  # its .linux is the kernel given to the other side
    ]


def test_report_mode_says_report(tmp_path) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text('[budget]\nmode = "report"\n[limits]\ncompressed_bytes = 1\n')
    r = run("check", SMALL, "--budget", str(budget))
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0] == f"{SMALL}: REPORT (0 pass, 0 warn, 1 fail; mode report)"
    md = run("check", SMALL, "--budget", str(budget), "--markdown").stdout
    assert md.startswith(f"### footprint check: 📋 report — `{SMALL}`")


def test_an_unwritable_step_summary_does_not_hide_the_verdict(tmp_path) -> None:
    budget = tmp_path / "b.toml"
    budget.write_text("[limits]\ncompressed_bytes = 1\n")
    where = str(tmp_path / "no" / "such" / "summary.md")
    r = run("check", SMALL, "--budget", str(budget), env={"GITHUB_STEP_SUMMARY": where})
    assert r.exit_code == 1  # the verdict's
    assert r.stdout.startswith(f"{SMALL}: FAIL (0 pass, 0 warn, 1 fail")
    assert r.stderr == f"footprint: warning: cannot append to {where}: No such file or directory\n"


@pytest.mark.integration
def test_the_readme_budget_runs_as_written(tmp_path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    budget = tmp_path / "budget.toml"
    budget.write_text(readme.split("```toml\n", 1)[1].split("```", 1)[0])
    image = str(real_image("initramfs-tools-zstd.img"))
    r = run("check", image, "--budget", str(budget), "--baseline", image)
    assert r.exit_code == 0, r.output
    components = json.loads(run("components", "--json", image).stdout)["components"]
    checks = 4 + 2 + 4 + len(components)  # limits, component limits, baseline totals, components
    assert r.stdout.startswith(f"{image}: PASS ({checks} pass, 0 warn, 0 fail; mode enforce)")


def test_diff_text_never_cuts_a_path(tmp_path) -> None:
    deep = "usr/lib/" + "/".join(f"directory-{i}" for i in range(8)) + "/a-file-with-a-long-name"
    image = tmp_path / "deep.img"
    parts = [newc_entry(".", 0o040755)]
    for i in range(1, deep.count("/") + 1):
        parts.append(newc_entry("/".join(deep.split("/")[:i]), 0o040755))
    parts.append(newc_entry(deep, 0o100644, b"x" * 5000))
    image.write_bytes(b"".join(parts) + newc_trailer())
    lines = run("diff", SMALL, str(image)).stdout.splitlines()
    folded = deep.removeprefix("usr/")  # diff folds the usr-merge
    row = next(line for line in lines if folded in line)
    assert row.split() == [folded, "new", "4.88", "KiB", "+4.88", "KiB"]


def _elf_image(path: Path, programs: list[str]) -> None:
    """An image of real ELF files from this host: each program a copy of /usr/bin/xz, with
    the C library and liblzma they load (no built-in rule claims liblzma)."""
    lib = "lib/x86_64-linux-gnu/"
    parts = [newc_entry(d, 0o040755) for d in (".", "bin", "lib", lib)]
    parts += [newc_entry(f"bin/{p}", 0o100755, Path(XZ).read_bytes()) for p in programs]
    parts += [
        newc_entry(lib + name, 0o100755, Path("/" + lib + name).read_bytes())
        for name in ("libc.so.6", "ld-linux-x86-64.so.2", "liblzma.so.5")
    ]
    path.write_bytes(b"".join(parts) + newc_trailer())


XZ, LZMA = "/usr/bin/xz", "/lib/x86_64-linux-gnu/liblzma.so.5"


def test_a_library_shared_anew_moves_a_component_s_share_not_its_own(tmp_path) -> None:
    """alpha loads liblzma alone, then beta loads it too: alpha's proportional bytes shrink,
    and the diff says that its own files did not change — what moved is the library."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[component]]\nname = "alpha"\npatterns = ["bin/alpha"]\n\n'
        '[[component]]\nname = "beta"\npatterns = ["bin/beta"]\n'
    )
    old, new = tmp_path / "old.img", tmp_path / "new.img"
    _elf_image(old, ["alpha"])
    _elf_image(new, ["alpha", "beta"])
    own, lzma = (-(-os.stat(p).st_size // 4096) * 4096 for p in (XZ, LZMA))
    r = run("diff", str(old), str(new), "--rules", str(rules), "--json")
    assert r.exit_code == 0, r.output
    rows = {c["name"]: c for c in json.loads(r.stdout)["components"]}
    assert rows["alpha"]["delta"] == -lzma // 2
    assert rows["alpha"]["parts"] == {
        "own": {"old": own, "new": own, "delta": 0},
        "exclusive": {"old": lzma, "new": 0, "delta": -lzma},
        "shared": {"old": 0, "new": lzma // 2, "delta": lzma // 2},
    }
    assert rows["beta"]["change"] == "added"
    assert rows["beta"]["parts"]["own"] == {"old": 0, "new": own, "delta": own}
    lines = run("diff", str(old), str(new), "--rules", str(rules)).stdout.splitlines()
    alpha = next(line for line in lines if line.startswith("  alpha "))
    kib = lambda n: f"{n / 1024:.3g}".rstrip("0").rstrip(".")  # noqa: E731
    assert alpha.split()[-6:] == ["0", "B", f"-{kib(lzma)}", "KiB", f"+{kib(lzma // 2)}", "KiB"]
