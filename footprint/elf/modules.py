"""Kernel modules: the firmware a module's .modinfo asks for (its `firmware=` entries, what
`modinfo -F firmware` prints), and what a compressed module expands to when it is loaded.

A module is an ELF relocatable object; lief reads its .modinfo section in the ELF worker
(read_modinfo), so lief is never imported by the main process. A .ko.xz, .ko.zst or .ko.gz
module is decompressed here first, through the same codecs as the image: the kernel does the
same at load time, into memory, so its unpacked size is a transient of every module loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from footprint.errors import BadImage

# The largest module unpacked: Debian's largest (amdgpu) is ~20 MiB; above this a module
# counts by its stored size, with a warning.
MAX_MODULE_BYTES = 256 << 20
COMPRESSED = (".ko.xz", ".ko.zst", ".ko.gz")
FIRMWARE_KEY = b"firmware="  # only modules holding it are parsed: most request no firmware


@dataclass(frozen=True)
class ModuleFacts:
    path: str  # inside the image, no leading slash
    name: str  # modinfo's name=, else the file name as modprobe spells it
    stored_bytes: int  # what sits in the rootfs
    unpacked_bytes: int  # what the kernel decompresses it to when loading it (= stored if plain)
    firmware: tuple[str, ...] = ()  # its firmware= entries, in order
    error: str = ""  # why its modinfo could not be read (it still counts by its size)


def module_name(path: str) -> str:
    """The name modprobe and modinfo use: the file name without suffix, '-' as '_'."""
    base = path.rsplit("/", 1)[-1]
    for suffix in (*COMPRESSED, ".ko"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def unpacked(path: str, data: bytes) -> tuple[bytes | None, str]:
    """The module's ELF bytes (decompressed if it is compressed), or None and why not."""
    if not path.endswith(COMPRESSED):
        return data, ""
    from footprint.image.codecs import unpack

    try:
        return b"".join(unpack(data, MAX_MODULE_BYTES)), ""
    except BadImage as e:
        return None, f"cannot decompress it: {e.detail}"


def read_modinfo(lief: Any, cfg: Any, path: str, data: bytes) -> dict[str, Any]:
    """The module's name and firmware= entries, as a plain dict (it crosses a process
    boundary); runs in the ELF worker."""
    binary = lief.ELF.parse(data, cfg)
    section = binary.get_section(".modinfo") if binary is not None else None
    if section is None:
        return {"path": path, "error": "no .modinfo section: not a kernel module"}
    name, firmware = "", []
    for entry in bytes(section.content).split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if not sep:
            continue
        if key == b"firmware":
            firmware.append(value.decode("utf-8", "surrogateescape"))
        elif key == b"name":
            name = value.decode("utf-8", "surrogateescape")
    return {"path": path, "name": name, "firmware": firmware}
