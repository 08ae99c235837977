"""Rules that attribute a dracut image's files to the dracut modules that installed them.

A dracut image lists its modules in usr/lib/dracut/modules.txt but not which module put which
file there; each module's module-setup.sh on this host says what it installs (inst_multiple,
inst_simple, inst_script, inst_binary, inst, inst_hook, inst_rules). Those calls become
rules, in the image's module order, ahead of the built-in rules (which still place kernel
modules, firmware and anything no module names). Best effort: it needs the host's dracut to
match the one that built the image.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from footprint.components.rules import Rule
from footprint.errors import EnvironmentUnavailable, UsageError

MODULES_D = Path("/usr/lib/dracut/modules.d")
MODULES_TXT = ("usr/lib/dracut/modules.txt", "lib/dracut/modules.txt")
_COPY = {"inst_simple", "inst_script", "inst_binary", "inst"}


def module_list(texts: dict[str, str]) -> list[str]:
    for path in MODULES_TXT:
        if path in texts:
            return texts[path].split()
    raise UsageError(
        "--by dracut-module needs a dracut image that carries its module list "
        "(usr/lib/dracut/modules.txt)"
    )


def _basename(token: str) -> str | None:
    name = token.strip("\"'").rstrip("/").rsplit("/", 1)[-1]
    return None if not name or "$" in name or name.startswith("-") else name


def _patterns(script: str) -> list[str]:
    """Patterns for what one module-setup.sh installs."""
    text = script.replace("\\\n", " ")
    patterns: list[str] = []
    for raw in text.splitlines():
        line = raw.strip().split("#", 1)[0].split("||", 1)[0].split("&&", 1)[0]
        try:
            words = shlex.split(line)
        except ValueError:
            words = line.split()
        if not words:
            continue
        cmd, args = words[0], [w for w in words[1:] if not w.startswith("-")]
        if cmd == "inst_multiple":
            patterns += [f"*/{b}" for b in map(_basename, args) if b]
        elif cmd in _COPY and args:
            if len(args) >= 2 and "$" not in args[1]:
                patterns.append(args[1].strip("\"'").lstrip("/"))
            elif (b := _basename(args[0])) is not None:
                patterns.append(f"*/{b}")
        elif cmd == "inst_hook" and len(args) >= 3 and (b := _basename(args[2])):
            patterns.append(f"lib/dracut/hooks/{args[0]}/{args[1]}-{b}")
        elif cmd == "inst_rules":
            patterns += [f"lib/udev/rules.d/{b}" for b in map(_basename, args) if b]
    return patterns


def dracut_module_rules(texts: dict[str, str], modules_d: Path = MODULES_D) -> list[Rule]:
    names = module_list(texts)
    if not modules_d.is_dir():
        raise EnvironmentUnavailable(
            f"--by dracut-module needs dracut's module scripts in "
            f"{modules_d} (Debian: apt-get install dracut-core)"
        )
    dirs = {d.name.lstrip("0123456789"): d for d in modules_d.iterdir() if d.is_dir()}
    rules = []
    for name in names:
        d = dirs.get(name)
        setup = d / "module-setup.sh" if d is not None else None
        if setup is None or not setup.is_file():
            continue
        pats = _patterns(setup.read_text(errors="replace"))
        own = [f"*/{f}" for f in os.listdir(d) if f != "module-setup.sh"]
        if pats or own:
            rules.append(Rule(name, tuple(dict.fromkeys(pats + own)), str(setup)))
    return rules
