"""Which generator built an image (dracut, initramfs-tools, …), from the markers each leaves
inside it; the component rules differ per generator."""

from __future__ import annotations

from collections.abc import Container

# Markers a generator leaves inside its image, most specific first.
GENERATOR_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "dracut",
        (
            "usr/lib/dracut/modules.txt",
            "usr/lib/dracut/build-parameter.txt",
            "lib/dracut/modules.txt",
            "usr/lib/dracut",
            "lib/dracut",
        ),
    ),
    ("mkinitcpio", ("buildconfig", "init_functions")),
    ("initramfs-tools", ("scripts/functions", "conf/initramfs.conf", "scripts/init-top")),
    (
        "debian-installer",
        ("var/lib/dpkg/info/rootskel.list", "usr/lib/debian-installer", "lib/debian-installer"),
    ),
)


def generator(paths: Container[str]) -> str:
    """The generator whose markers `paths` (the tree's paths, no leading slash) hold."""
    for name, markers in GENERATOR_MARKERS:
        if any(marker in paths for marker in markers):
            return name
    return "unknown"
