"""What a kdump image carries that its capture kernel does not need, with what dropping it saves.

A capture kernel boots, mounts the dump target and the root, saves /proc/vmcore and reboots:
it needs storage and filesystem drivers (and crypto for an encrypted target, virtio in a VM),
but it draws nothing, plays nothing and reads no keyboard. A module group it does not need is
suggested with the firmware its modules request; firmware no module requests is suggested on
its own. The figures are the model's marginal bytes: `calibrate --without` measures them.
"""

from __future__ import annotations

from dataclasses import dataclass

from footprint.components.firmware import UNREQUESTED
from footprint.profile import Profile

# module group -> why a capture kernel dumping to a local disk does without it ("" : needed)
NOT_NEEDED = {
    "modules-gpu": "a capture kernel draws nothing: no GPU driver is needed",
    "modules-input": "nobody types at a capture kernel",
    "modules-net": "unless the dump goes over the network (ssh, nfs)",
    "modules-usb": "unless the dump target or the root is on a USB disk",
}


@dataclass(frozen=True)
class Suggestion:
    components: tuple[str, ...]  # what to drop together: a module group and its firmware
    marginal_bytes: int  # what the image would shrink by (page-rounded)
    reason: str


def suggestions(p: Profile) -> list[Suggestion]:
    """The components to drop for a dump to a local disk, largest saving first."""
    marginal = {c.name: c.marginal_bytes for c in p.components}
    group_of = {f.path: f.component for f in p.files}
    firmware_of: dict[str, set[str]] = {}  # module group -> its modules' firmware components
    for r in p.firmware_requests:
        name = f"firmware-{r.module}"
        if name in marginal:
            firmware_of.setdefault(group_of.get(r.path, ""), set()).add(name)
    out = []
    for group, reason in NOT_NEEDED.items():
        names = (group, *sorted(firmware_of.get(group, ())))
        saved = sum(marginal.get(n, 0) for n in names)
        # and what they share only among themselves: a blob two of its drivers request
        saved += sum(s.page_rounded_bytes for s in p.shared_libraries if set(s.users) <= {*names})
        if saved:
            out.append(Suggestion(tuple(n for n in names if n in marginal), saved, reason))
    if marginal.get(UNREQUESTED):
        reason = "no module in the image requests these files"
        out.append(Suggestion((UNREQUESTED,), marginal[UNREQUESTED], reason))
    return sorted(out, key=lambda s: -s.marginal_bytes)
