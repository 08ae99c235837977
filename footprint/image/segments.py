"""Split an image into members the way unpack_to_rootfs() does, and walk their entries.

An image is any sequence of plain cpio archives (4-byte aligned) and compressed members, with
zero padding anywhere between them; each compressed member holds whole cpio archives.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from footprint.errors import BadImage, UnsupportedCodec
from footprint.image import codecs
from footprint.image.cpio import CpioEntry, EntryData, iter_archive
from footprint.image.stream import BoundedSource, FileSource, Source


@dataclass(slots=True)
class Segment:
    """One member of the image: a run of plain cpio archives, or one compressed stream."""

    index: int
    offset: int
    end: int
    codec: str  # "none" for plain cpio
    uncompressed_bytes: int
    entries: int
    archives: int

    @property
    def compressed_bytes(self) -> int:
        return self.end - self.offset


class ImageReader:
    """Reads one image front to back; `segments` and `padding_bytes` fill in as it goes."""

    def __init__(self, f: BinaryIO, ranges: list[tuple[int, int]] | None = None) -> None:
        from footprint.image.stream import MultiRangeSource

        self._src: FileSource = MultiRangeSource(f, ranges) if ranges else FileSource(f)
        self.segments: list[Segment] = []
        self.padding_bytes = 0

    def entries(self) -> Iterator[tuple[CpioEntry, EntryData | None]]:
        """Every entry of every archive in image order (trailers excluded)."""
        src = self._src
        while True:
            self.padding_bytes += src.skip_zeros()
            if src.at_end():
                return
            offset = src.offset
            head = src.peek(6)
            if head[:1] == b"0" and offset & 3 == 0:
                yield from self._plain(src, offset)
                continue
            codec = codecs.detect(head)
            if codec is None:
                if head[:2] in (b"\xc7\x71", b"\x71\xc7"):
                    raise BadImage(
                        "old binary cpio archive: the kernel refuses it ('invalid "
                        "magic') — rebuild it with cpio -H newc",
                        offset,
                    )
                raise BadImage(
                    f"invalid magic {head[:4].hex()} at the start of a member "
                    "(not cpio, not a compression the kernel knows)",
                    offset,
                )
            try:
                left = codec.max_unpacked - sum(s.uncompressed_bytes for s in self.segments)
                member = BoundedSource(codec.open(src, offset), limit=left)
            except ImportError as e:  # an optional decompressor is not installed
                raise UnsupportedCodec(f"{codec.name} member found but {e}", offset) from None
            seg = Segment(len(self.segments), offset, offset, codec.name, 0, 0, 0)
            self.segments.append(seg)
            try:
                yield from self._compressed(member, seg)
            finally:  # its decompressor, also when the reader stops early
                member.close()
            seg.end = src.offset  # the member gave back what it read past its end
            seg.uncompressed_bytes = member.offset

    def _plain(self, src: FileSource, offset: int) -> Iterator[tuple[CpioEntry, EntryData | None]]:
        seg = Segment(len(self.segments), offset, offset, "none", 0, 0, 0)
        self.segments.append(seg)
        while True:
            for item in iter_archive(src, seg.index, seg.archives):
                seg.entries += 1
                yield item
            seg.archives += 1
            seg.end = src.offset
            seg.uncompressed_bytes = seg.end - seg.offset
            # Another plain archive may follow after zero padding; a member of another kind
            # ends this segment.
            self.padding_bytes += src.skip_zeros()
            if src.at_end():
                return
            if src.offset & 3:  # do_reset(): what follows the zeros must be aligned
                raise BadImage("broken padding after a cpio archive", src.offset)
            if src.peek(1) != b"0":
                return

    def _compressed(
        self, member: Source, seg: Segment
    ) -> Iterator[tuple[CpioEntry, EntryData | None]]:
        try:
            yield from self._archives_in(member, seg)
        except BadImage as e:
            if e.offset is None or e.offset == seg.offset:
                raise
            raise BadImage(
                f"{e.detail} (at byte {e.offset} of the {seg.codec} member's "
                f"decompressed data; the member starts at byte {seg.offset})"
            ) from None

    def _archives_in(
        self, member: Source, seg: Segment
    ) -> Iterator[tuple[CpioEntry, EntryData | None]]:
        while True:
            for item in iter_archive(member, seg.index, seg.archives):
                seg.entries += 1
                yield item
            seg.archives += 1
            # flush_buffer(): zeros, then another archive or the end of the stream.
            member.skip_zeros()
            if member.at_end():
                return
            if member.offset & 3:
                raise BadImage("broken padding: an archive would start unaligned", member.offset)
            if member.peek(1) != b"0":
                raise BadImage("junk within compressed archive", member.offset)
