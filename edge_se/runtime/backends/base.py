"""What every runtime backend provides: tensor specs and a thread-safe ``infer``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (``None`` for a dynamic dim) and dtype.

    ``batch_range`` is the (min, max) batch a dynamic-batch input accepts (``max`` is ``None``
    when unbounded, as in ONNX Runtime); for a static batch it is ``(B, B)``.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    batch_range: tuple[int, int | None] = (1, None)

    @property
    def static_batch(self) -> int | None:
        """The fixed batch size, or ``None`` for a dynamic batch."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None

    def describe(self) -> str:
        dims = "x".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.dtype.name}"


def dims_from(shape: Sequence[object]) -> tuple[int | None, ...]:
    """Normalise a framework's shape (ints, strings, ``None``, -1) to ints and ``None``."""
    return tuple(d if isinstance(d, int) and d >= 0 else None for d in shape)


class Runner(Protocol):
    """The backend interface the :class:`~edge_se.runtime.Runtime` drives.

    ``infer`` must be safe to call from several threads at once.
    """

    name: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    def infer(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run once; outputs in the order of ``outputs``."""
        ...

    def describe(self) -> dict:
        """Backend name, providers/devices actually used, options (JSON-serialisable)."""
        ...

    def close(self) -> None:
        """Release sessions, contexts and device memory."""
        ...
