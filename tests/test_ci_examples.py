"""The CI examples (examples/ci): the job script run as separate runs, as matrix jobs would
run it, then the merge script over what they wrote; and the workflows call the scripts with
their matrix's variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, SAMPLES, assert_schema
from tests.test_merge import MARKER, riscv_image

CI = ROOT / "examples" / "ci"
JOB, MERGE = CI / "footprint-job.sh", CI / "footprint-merge.sh"
FOOTPRINT = str(Path(sys.executable).with_name("footprint"))


def kernel() -> str:
    from tests.test_merge import need

    kernels = sorted(Path("/boot").glob("vmlinuz-*"))
    need(kernels, "no kernel in /boot (apt-get install linux-image-amd64)")
    return str(kernels[-1])


def script(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        env={**os.environ, "FOOTPRINT": FOOTPRINT, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )


def job(results: Path, image: Path, kernel: str, shape: str, mode: str, **env: str) -> Path:
    r = script(JOB, results, image, kernel, shape, mode, env=env)
    assert r.returncode == 0, r.stderr
    written = r.stderr.strip().splitlines()[-1].rsplit("wrote ", 1)[1]
    return Path(written)


def merged(results: Path, out: Path, *budget: Path) -> subprocess.CompletedProcess[str]:
    r = script(MERGE, results, out, *budget, env={"GITHUB_STEP_SUMMARY": str(out / "summary")})
    return r


def test_profile_jobs_then_merge(tmp_path: Path) -> None:
    """Three separate profile jobs, each into its own artifact directory as download-artifact
    lays them out, then the merge job."""
    k = kernel()
    riscv = riscv_image(tmp_path)
    docs = [
        job(tmp_path / "results" / "a", SAMPLES / "busybox-gzip.img", k, "static", "profile"),
        job(tmp_path / "results" / "b", SAMPLES / "small-zstd.img", k, "static", "profile"),
        job(tmp_path / "results" / "c", riscv, "none", "static", "profile"),
    ]
    assert docs[0].name == f"busybox-gzip.img_{Path(k).name}_static_profile.json"
    out = tmp_path / "matrix"
    r = merged(tmp_path / "results", out)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "matrix.json").read_text())
    assert_schema(m)
    assert len(m["cells"]) == 3
    assert sorted(c["source"] for c in m["cells"]) == sorted(map(str, docs))
    assert m["axes"]["arch"] == ["riscv64", "x86_64"]
    assert m["axes"]["image"] == ["busybox-gzip.img", "riscv64.img", "small-zstd.img"]
    text = (out / "matrix.txt").read_text()
    assert r.stdout == text
    assert text.startswith("3 cells: 2 architectures (riscv64, x86_64), 2 kernels, 3 images;")
    for arch in ("riscv64", "x86_64"):
        assert f"\n{arch} " in text
    summary = (out / "summary").read_text()
    assert summary == (out / "matrix.md").read_text() and summary.count("\n| ") == 2 + 3
    assert (out / "matrix.html").read_text().count("<tr") == 1 + 3
    # the same cell from a second run: refused (exit 5), named
    job(tmp_path / "results" / "d", SAMPLES / "small-zstd.img", k, "static", "profile")
    r = merged(tmp_path / "results", tmp_path / "again")
    assert r.returncode == 5 and "are the same cell" in r.stderr


@pytest.mark.slow
def test_calibrate_jobs_then_merge_and_gate(tmp_path: Path) -> None:
    """A real direct calibration and a boot (QEMU, TCG) beside a profile job, then the merge
    job with the shipped budget, and with one the calibration exceeds."""
    k = kernel()
    image = SAMPLES / "busybox-gzip.img"
    fast = f"--accel tcg --until {MARKER.split()[0]}"  # the sample's marker's first word
    results = tmp_path / "results"
    slow = fast + " --resolution 16M"
    cal = job(results / "1", image, k, "direct", "calibrate", FOOTPRINT_ARGS=slow)
    boot = job(results / "2", image, k, "256M", "boot", FOOTPRINT_ARGS=fast)
    job(results / "3", image, k, "static", "profile")
    r = merged(results, tmp_path / "out", CI / "budget.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    m = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert_schema(m)
    cells = {c["source"]: c for c in m["cells"]}
    assert len(cells) == 3
    assert cells[str(cal)]["axes"]["mode"] == "direct" and cells[str(cal)]["result"]["success"]
    assert cells[str(boot)]["axes"]["ram_mib"] == 256
    assert "PASS" in r.stdout
    tight = tmp_path / "tight.toml"
    tight.write_text('[limits]\nrecommended_bytes = "32M"\n')
    r = merged(results, tmp_path / "out2", tight)
    assert r.returncode == 1
    assert f"fail  {cells[str(cal)]['label']}: limit recommended_bytes" in r.stdout


def test_job_script_refuses_what_it_cannot_mean(tmp_path: Path) -> None:
    r = script(JOB, tmp_path, SAMPLES / "small-zstd.img", "none", "2G", "calibrate")
    assert r.returncode == 2 and "SHAPE is direct or RAMxCPUS" in r.stderr
    r = script(JOB, tmp_path, SAMPLES / "small-zstd.img", "none")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = script(JOB, tmp_path, SAMPLES / "bad" / "garbage.img", "none", "x", "profile")
    assert r.returncode == 3 and not list(tmp_path.glob("*.json*"))  # nothing left behind
    r = script(MERGE, tmp_path / "empty", tmp_path / "out")
    assert r.returncode == 2 and "no result documents" in r.stderr


def _steps_running(steps: list[dict], script_name: str) -> list[str]:
    return [s["run"] for s in steps if script_name in s.get("run", "")]


def test_github_workflow_calls_the_scripts_with_its_matrix() -> None:
    wf = yaml.safe_load((CI / "github-actions.yml").read_text())
    cal, final = wf["jobs"]["calibrate"], wf["jobs"]["matrix"]
    assert set(cal["strategy"]["matrix"]) == {"arch", "kernel", "shape"}
    (run,) = _steps_running(cal["steps"], "examples/ci/footprint-job.sh")
    for var in ("arch", "kernel", "shape"):
        assert "${{ matrix." + var + " }}" in run
    upload = next(s for s in cal["steps"] if s.get("uses", "").startswith("actions/upload-"))
    name = upload["with"]["name"]
    assert all("${{ matrix." + v + " }}" in name for v in ("arch", "kernel", "shape"))
    assert final["needs"] == "calibrate"
    download = next(s for s in final["steps"] if "download-artifact" in s.get("uses", ""))
    assert download["with"]["path"] == "results"
    (merge_run,) = _steps_running(final["steps"], "examples/ci/footprint-merge.sh")
    assert merge_run.split()[1:] == ["results", "matrix", "examples/ci/budget.toml"]
    assert (ROOT / merge_run.split()[3]).exists()


def test_gitlab_pipeline_calls_the_scripts_with_its_matrix() -> None:
    ci = yaml.safe_load((CI / "gitlab-ci.yml").read_text())
    assert ci["stages"] == ["calibrate", "merge"]
    cal, merge = ci["calibrate"], ci["merge"]
    (axes,) = cal["parallel"]["matrix"]
    assert set(axes) == {"ARCH", "KERNEL", "SHAPE"}
    (run,) = [line for line in cal["script"] if "examples/ci/footprint-job.sh" in line]
    for var in ("$ARCH", "$KERNEL", "$SHAPE"):
        assert var in run
    assert cal["artifacts"]["paths"] == ["results/"] and cal["artifacts"]["when"] == "always"
    assert merge["stage"] == "merge" and merge["needs"] == ["calibrate"]
    (merge_run,) = merge["script"]
    assert merge_run.split() == [
        "examples/ci/footprint-merge.sh", "results", "matrix", "examples/ci/budget.toml",
    ]  # fmt: skip


def test_scripts_are_executable_posix_shell() -> None:
    for s in (JOB, MERGE):
        assert os.access(s, os.X_OK)
        assert s.read_text().startswith("#!/bin/sh\n")
        assert subprocess.run(["sh", "-n", str(s)]).returncode == 0


@pytest.mark.slow
def test_a_kdump_shape_job_is_one_cell(tmp_path: Path) -> None:
    """A real kdump calibration of one machine shape (2 GiB, 1 CPU; about 4 minutes under
    TCG here) as a matrix job writes it: one kdump cell with its RAM and CPUs."""
    k = kernel()
    args = f"--accel tcg --until {MARKER.split()[0]} --resolution 16M"
    doc = job(
        tmp_path / "r", SAMPLES / "busybox-gzip.img", k, "2Gx1", "calibrate", FOOTPRINT_ARGS=args
    )
    r = merged(tmp_path / "r", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "out" / "matrix.json").read_text())
    assert_schema(m)
    (cell,) = m["cells"]
    assert cell["source"] == str(doc)
    assert {k: cell["axes"][k] for k in ("mode", "ram_mib", "cpus", "shape")} == {
        "mode": "kdump",
        "ram_mib": 2048,
        "cpus": 1,
        "shape": "2G × 1 CPU",
    }
    assert cell["result"]["minimum_mib"] == json.loads(doc.read_text())["kdump"]["minimum_mib"]
    assert " kdump  2G × 1 CPU  ok " in (tmp_path / "out" / "matrix.txt").read_text()
