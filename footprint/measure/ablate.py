"""Component ablation: what removing a component really saves, measured by calibrating a
copy of the image without its files and its exclusive libraries."""

from __future__ import annotations

from dataclasses import dataclass

from footprint.analyze import Analysis
from footprint.errors import UsageError

# What a boot cannot do without: the shell and loader every script needs, and the init.
REQUIRED = ("glibc", "busybox", "klibc", "shells", "base-config")


@dataclass(frozen=True)
class Ablation:
    component: str
    paths: frozenset[str]  # every tree path (all hardlink names) to drop
    static_marginal_bytes: int  # page-rounded own + exclusive
    static_marginal_unpack_bytes: int  # the same + its share of the compressed image


def refusal(a: Analysis, component: str, init: str = "/init") -> str | None:
    """Why `component` cannot be removed, or None."""
    att = a.attribution
    assert att is not None
    if component not in att.components:
        return f"no component {component!r} in this image"
    if component in REQUIRED or component == a.summary.generator:
        return f"the boot cannot do without {component} (the shell, loader or init framework)"
    node = a.inventory.rootfs.lookup(init.lstrip("/"))
    if node is not None and att.owner.get(node.path) == component:
        return f"{component} owns the init ({init})"
    return None


def plan(a: Analysis, components: list[str], init: str = "/init") -> Ablation:
    """The files to drop to remove `components` together, and the static model's marginal."""
    att = a.attribution
    assert att is not None
    for name in components:
        why = refusal(a, name, init)
        if why:
            raise UsageError(f"cannot ablate {name}: {why}")
    paths = {p for p, owner in att.owner.items() if owner in components}  # every name
    marginal = sum(att.components[c].marginal_bytes for c in components)
    terms = {t.name: t for t in a.component_terms}
    unpack = int(sum(terms[c].marginal_unpack_bytes for c in components if c in terms))
    return Ablation("+".join(components), frozenset(paths), marginal, unpack)


def removable(a: Analysis, init: str = "/init", minimum_bytes: int = 0) -> list[str]:
    """Components that can be ablated, largest marginal cost first."""
    att = a.attribution
    assert att is not None
    names = [
        c.name
        for c in sorted(att.components.values(), key=lambda c: -c.marginal_bytes)
        if c.marginal_bytes >= minimum_bytes
    ]
    return [n for n in names if refusal(a, n, init) is None]
