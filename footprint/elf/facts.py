"""What footprint knows of one ELF file, and how it is read with lief.

read_facts() runs inside the lief worker process (see worker.py): it takes the file's bytes
and returns plain data, so a crash or hang in lief never takes the main process with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

ELF_MAGIC = b"\x7fELF"
NOTE_PACKAGE = 0xCAFE1A7E  # .note.package, owner "FDO": JSON {type, name, version, …}
NOTE_DLOPEN = 0x407C0C0A  # .note.dlopen, owner "FDO": JSON [{feature, soname: [...]}, …]
SECTIONS = (".text", ".rodata", ".data", ".bss")

# What an ELF is, for attribution and the closure.
EXECUTABLE, PIE, SHARED, STATIC, OBJECT, OTHER = (
    "executable",
    "pie-executable",
    "shared-library",
    "static-executable",
    "object",
    "other",
)


@dataclass(frozen=True)
class ElfFacts:
    path: str  # inside the image, normalised, no leading slash
    size: int
    kind: str
    machine: str = ""
    load_file_bytes: int = 0  # sum of PT_LOAD p_filesz
    load_mem_bytes: int = 0  # sum of PT_LOAD p_memsz
    sections: dict[str, int] = field(default_factory=dict)
    debug: bool = False  # .debug_* sections present: not stripped of debug info
    symtab: bool = False  # .symtab present
    needed: tuple[str, ...] = ()
    soname: str = ""
    interpreter: str = ""
    rpath: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    package: dict[str, str] = field(default_factory=dict)  # from .note.package
    dlopen: tuple[str, ...] = ()  # sonames from .note.dlopen
    error: str = ""  # why lief could not read it (the file still counts by its size)

    @property
    def dynamic(self) -> bool:
        return bool(self.interpreter or self.needed)

    @property
    def runs(self) -> bool:
        """An entry point the closure starts from (an executable of any kind)."""
        return self.kind in (EXECUTABLE, PIE, STATIC)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ElfFacts:
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**fields)

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": "/" + self.path,
            "size": self.size,
            "kind": self.kind,
            "machine": self.machine,
            "load_file_bytes": self.load_file_bytes,
            "load_mem_bytes": self.load_mem_bytes,
            "sections": self.sections,
            "debug": self.debug,
            "symtab": self.symtab,
            "needed": list(self.needed),
            "soname": self.soname,
            "interpreter": self.interpreter,
            "rpath": list(self.rpath),
            "runpath": list(self.runpath),
            "package": self.package,
            "dlopen": list(self.dlopen),
            **({"error": self.error} if self.error else {}),
        }


def parser_config(lief: Any, notes: bool = True) -> Any:
    """The minimal configuration: no symbols, relocations or versions; notes kept unless
    `notes` is False (a kernel module's sections are all that is read of it)."""
    cfg = lief.ELF.ParserConfig()
    cfg.parse_dyn_symbols = False
    cfg.parse_symtab_symbols = False
    cfg.parse_relocations = False
    cfg.parse_symbol_versions = False
    cfg.parse_overlay = False
    cfg.parse_notes = notes
    return cfg


def read_facts(lief: Any, cfg: Any, path: str, data: bytes) -> dict[str, Any]:
    """ElfFacts fields for one file, as a plain dict (it crosses a process boundary)."""
    base: dict[str, Any] = {"path": path, "size": len(data), "kind": OTHER}
    binary = lief.ELF.parse(data, cfg)
    if binary is None:
        return {**base, "error": "lief cannot parse it"}
    ELF = lief.ELF
    header = binary.header
    tags = ELF.DynamicEntry.TAG
    needed, rpath, runpath, soname = [], [], [], ""
    for entry in binary.dynamic_entries:
        tag = entry.tag
        if tag == tags.NEEDED:
            needed.append(entry.name)
        elif tag == tags.SONAME:
            soname = entry.name
        elif tag == tags.RPATH:
            rpath.extend(entry.paths)
        elif tag == tags.RUNPATH:
            runpath.extend(entry.paths)
    interp = binary.interpreter if binary.has_interpreter else ""
    ftype = header.file_type
    if ftype == ELF.Header.FILE_TYPE.EXEC:
        kind = EXECUTABLE if (interp or needed) else STATIC
    elif ftype == ELF.Header.FILE_TYPE.DYN:
        # libc.so.6 and libcap.so.2 have an interpreter too: a SONAME makes it a library.
        kind = PIE if interp and not soname else SHARED
    elif ftype == ELF.Header.FILE_TYPE.REL:
        kind = OBJECT
    else:
        kind = OTHER
    load_file = load_mem = 0
    for seg in binary.segments:
        if seg.type == ELF.Segment.TYPE.LOAD:
            load_file += seg.physical_size
            load_mem += seg.virtual_size
    sections: dict[str, int] = {}
    debug = symtab = False
    for sec in binary.sections:
        name = sec.name
        if name in SECTIONS:
            sections[name] = sec.size
        elif name.startswith((".debug_", ".zdebug_")):
            debug = True
        elif name == ".symtab":
            symtab = True
    package: dict[str, str] = {}
    dlopen: list[str] = []
    for note in binary.notes:
        if note.name.rstrip("\0") != "FDO":
            continue
        kind_raw = getattr(note, "original_type", None)
        try:
            payload = json.loads(bytes(note.description).rstrip(b"\0").decode())
        except (ValueError, UnicodeDecodeError):
            continue
        if kind_raw == NOTE_PACKAGE and isinstance(payload, dict):
            package = {str(k): str(v) for k, v in payload.items()}
        elif kind_raw == NOTE_DLOPEN and isinstance(payload, list):
            for feature in payload:
                if isinstance(feature, dict):
                    dlopen.extend(str(s) for s in feature.get("soname", []))
    problem = ""
    if kind != OBJECT and load_mem == 0:
        problem = "malformed: no loadable segment could be read"
    elif load_file > len(data):
        problem = f"truncated: its segments need {load_file} bytes, the file has {len(data)}"
    return {
        **base,
        "error": problem,
        "kind": kind,
        "machine": str(header.machine_type).rsplit(".", 1)[-1],
        "load_file_bytes": load_file,
        "load_mem_bytes": load_mem,
        "sections": sections,
        "debug": debug,
        "symtab": symtab,
        "needed": needed,
        "soname": soname,
        "interpreter": interp,
        "rpath": rpath,
        "runpath": runpath,
        "package": package,
        "dlopen": dlopen,
    }
