"""Every JSON document a command prints carries its kind and validates against the schema
footprint ships; a saved profile renders exactly as the image it was made from."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SAMPLES, assert_schema, real_image

from footprint.cli import cli
from footprint.schemas import KINDS, schema

SMALL = str(SAMPLES / "busybox-gzip.img")
EARLY = str(SAMPLES / "busybox-early-zstd.img")


def run(*args: str) -> str:
    r = CliRunner().invoke(cli, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_every_kind_has_a_schema_that_is_valid_draft_2020_12() -> None:
    import jsonschema

    for kind in KINDS:
        s = schema(kind)
        jsonschema.Draft202012Validator.check_schema(s)
        assert s["properties"]["kind"] in ({"const": kind}, {"enum": [kind]}), kind


def test_schema_command_prints_it() -> None:
    assert json.loads(run("schema", "profile")) == json.loads(json.dumps(schema("profile")))


def _documents(image: str, tmp_path: Path) -> dict[str, dict]:
    budget = tmp_path / "budget.toml"
    budget.write_text('[limits]\ncompressed_bytes = "40M"\n[limits.components]\nbusybox = "8M"\n')
    docs = {
        "inspect": run("inspect", "--json", "--files", image),
        "components": run("components", "--json", "--suggest", image),
        "groups": run("components", "--json", "--by", "package", image),
        "elf": run("elf", "--json", image, "/bin/busybox"),
        "profile": run("profile", image),
        "diff": run("diff", "--json", image, EARLY),
        "check": run("check", "--json", image, "--budget", str(budget)),
        "extract": run("extract", "--json", image, str(tmp_path / "tree")),
    }
    return {kind: json.loads(text) for kind, text in docs.items()}


def test_every_static_command_validates(tmp_path: Path) -> None:
    for kind, doc in _documents(SMALL, tmp_path).items():
        assert doc["kind"] == kind
        assert_schema(doc)


def test_a_wrong_document_fails_its_schema(tmp_path: Path) -> None:
    import jsonschema

    doc = json.loads(run("profile", SMALL))
    doc["totals"]["files"] = -1
    with pytest.raises(jsonschema.ValidationError):
        assert_schema(doc)
    doc = json.loads(run("components", "--json", SMALL))
    del doc["components"][0]["marginal_bytes"]
    with pytest.raises(jsonschema.ValidationError):
        assert_schema(doc)


@pytest.mark.parametrize(
    "args",
    [
        ("components",),
        ("components", "--json"),
        ("components", "--by", "file"),
        ("components", "--by", "package", "--json"),
        ("diff", "@", EARLY),
        ("diff", EARLY, "@", "--json"),
        ("diff", "@", EARLY, "--markdown"),
        ("report", "--markdown", "@"),
    ],
)
def test_a_saved_profile_renders_as_the_image(tmp_path: Path, args: tuple[str, ...]) -> None:
    saved = tmp_path / "p.json"
    run("profile", SMALL, "-o", str(saved))

    def with_(target: str) -> list[str]:
        out = [target if a == "@" else a for a in args]
        return out if "@" in args else [*out, target]

    from_image = run(*with_(SMALL))
    from_profile = run(*with_(str(saved)))
    assert from_profile == from_image


def test_check_of_a_saved_profile_is_the_check_of_the_image(tmp_path: Path) -> None:
    saved = tmp_path / "p.json"
    run("profile", SMALL, "-o", str(saved))
    budget = tmp_path / "budget.toml"
    budget.write_text(
        '[limits]\nunpacked_bytes = "1M"\n[baseline]\nwarn_percent = 0.5\nerror_percent = 1\n'
    )
    r_image = CliRunner().invoke(
        cli, ["check", SMALL, "--budget", str(budget), "--baseline", EARLY]
    )
    r_saved = CliRunner().invoke(
        cli, ["check", str(saved), "--budget", str(budget), "--baseline", EARLY]
    )
    assert (r_image.exit_code, r_saved.exit_code) == (1, 1)
    assert r_saved.stdout == r_image.stdout.replace(SMALL, str(saved))


@pytest.mark.integration
def test_real_image_documents_validate(tmp_path: Path) -> None:
    image = str(real_image("initramfs-tools-zstd.img"))
    for kind in ("inspect", "components", "profile"):
        args = {"inspect": ["inspect", "--json"], "components": ["components", "--json"]}
        doc = json.loads(run(*args.get(kind, ["profile"]), image))
        assert doc["kind"] == kind
        assert_schema(doc)
