"""Field types of the typed documents, with the constraints checked when one is read back."""

from __future__ import annotations

from typing import Annotated

import msgspec

Bytes = Annotated[int, msgspec.Meta(ge=0)]  # a size in bytes, never negative
Count = Annotated[int, msgspec.Meta(ge=0)]
