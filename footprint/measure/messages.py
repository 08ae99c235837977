"""What the sandbox and the parent tell each other: single bytes on the handshake pipes, and
one line per message on the status pipe, written by encode() and read by Reader on the other
side (no substring matching of free text on either side)."""

from __future__ import annotations

import codecs
import enum
from dataclasses import dataclass

# The handshake pipes carry one byte each way.
READY = b"u"  # sandbox → parent: the namespaces exist, map the user namespace's ids
GO = b"g"  # parent → sandbox: the ids are mapped, or this process is in the cgroup now


class Kind(str, enum.Enum):
    JOIN = "join"  # put process <pid> in the cgroup and open its gate
    UNPACKED = "unpacked"  # the unpack wrote <bytes> of file data
    UNPACK_FAILED = "unpack-failed"  # the unpack failed: <why>
    SETUP_FAILED = "setup-failed"  # the sandbox could not start the entry: <traceback>


@dataclass(frozen=True)
class Message:
    kind: Kind
    text: str

    @property
    def number(self) -> int:
        return int(self.text)


def encode(kind: Kind, value: object) -> bytes:
    """One line: the kind, a space, the value with backslashes and newlines escaped."""
    text = str(value).replace("\\", "\\\\").replace("\n", "\\n")
    return f"{kind.value} {text}\n".encode()


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append("\n" if text[i + 1] == "n" else text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


class Reader:
    """The status pipe's messages as they arrive: feed() returns the complete ones."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> list[Message]:
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        out = []
        for line in lines:
            kind, _, value = line.partition(" ")
            try:
                out.append(Message(Kind(kind), _unescape(value)))
            except ValueError:  # not one of ours: a stray write cannot pass for a message
                continue
        return out
