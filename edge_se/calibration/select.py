"""Seeded choice of which candidates form a calibration set.

``random``: a seeded permutation of all candidates, first ``count`` taken (returned sorted).
``stratified``: classes get equal quotas (``count // k``, the remainder to the first classes in
name order); a class with too few images gives its shortfall to the others. Within a class the
order is a seeded permutation. Excluded candidates (undecodable files skipped with
``skip_bad``) are passed over without changing the order of the others, so a selection depends
only on the seed, the candidate list and the excluded set.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _quotas(available: list[int], count: int) -> list[int]:
    """Split ``count`` over classes as evenly as their sizes allow (water-filling)."""
    quotas = [0] * len(available)
    left = count
    open_ = [i for i, a in enumerate(available) if a > 0]
    while left > 0 and open_:
        share, extra = divmod(left, len(open_))
        for rank, i in enumerate(open_):
            want = share + (1 if rank < extra else 0)
            take = min(want, available[i] - quotas[i])
            quotas[i] += take
            left -= take
        open_ = [i for i in open_ if quotas[i] < available[i]]
    return quotas


def select(
    labels: Sequence[int | None],
    count: int,
    method: str,
    seed: int,
    excluded: set[int] | frozenset[int] = frozenset(),
) -> list[int]:
    """Indices of the chosen candidates (at most ``count``; fewer only if there are fewer)."""
    n = len(labels)
    rng = np.random.default_rng(seed)
    if method == "random" or all(lab is None for lab in labels):
        order = [int(i) for i in rng.permutation(n) if int(i) not in excluded]
        return sorted(order[:count])
    classes = sorted({int(lab) for lab in labels if lab is not None})
    members = {c: [i for i in range(n) if labels[i] == c] for c in classes}
    perms = {c: [members[c][int(j)] for j in rng.permutation(len(members[c]))] for c in classes}
    usable = {c: [i for i in perms[c] if i not in excluded] for c in classes}
    quotas = _quotas([len(usable[c]) for c in classes], count)
    chosen: list[int] = []
    for c, q in zip(classes, quotas):
        chosen.extend(usable[c][:q])
    return sorted(chosen)


__all__ = ["select"]
