"""Mini-batch orders of one epoch: a full permutation or a shuffle buffer, shared or per restart.

flowmix draws one full random permutation of the points per epoch, shared by every restart (the
restarts are trained together). The paper's reference code differed in two ways, kept here as
options to measure their effect: it ran every restart as a separate process, so each had its own
order, and it shuffled through a buffer (TensorFlow's ``Dataset.shuffle(1024)``), which only mixes
points that lie within about a buffer's length of each other in the stored order.
"""

from __future__ import annotations

import torch
from torch import Tensor

BATCH_ORDERS: tuple[str, ...] = ("shared", "per-restart")


def epoch_order(n_samples: int, generator: torch.Generator | None, buffer_size: int | None = None) -> Tensor:
    """One epoch's order of the point indices (n_samples,), int64.

    ``buffer_size`` None: a uniform random permutation. An integer: the order in which a shuffle
    buffer of that many slots emits the points read in their stored order, as
    ``tf.data.Dataset.shuffle``: the buffer starts with the first ``buffer_size`` points; each
    step emits a uniformly chosen slot and refills it with the next unread point; once all are
    read, the remaining slots are emitted in random order.

    Examples
    --------
    >>> sorted(epoch_order(6, torch.Generator().manual_seed(0), buffer_size=2).tolist())
    [0, 1, 2, 3, 4, 5]
    >>> epoch_order(4, torch.Generator().manual_seed(0), buffer_size=1).tolist()
    [0, 1, 2, 3]
    """
    if buffer_size is None or buffer_size >= n_samples:
        return torch.randperm(n_samples, generator=generator)
    uniforms = torch.rand(n_samples, generator=generator, dtype=torch.float64).tolist()
    slots = list(range(buffer_size))
    next_unread = buffer_size
    order = []
    for u in uniforms:
        j = int(u * len(slots))
        order.append(slots[j])
        if next_unread < n_samples:
            slots[j] = next_unread
            next_unread += 1
        else:  # drain: move the last slot into the emptied one
            slots[j] = slots[-1]
            slots.pop()
    return torch.tensor(order, dtype=torch.int64)


def per_restart_orders(
    n_samples: int,
    n_restarts: int,
    generator: torch.Generator | None,
    buffer_size: int | None = None,
    first_restart: int = 0,
) -> Tensor:
    """One epoch's orders (n_restarts, n_samples), an independent one for each restart.

    One integer is drawn from ``generator`` per epoch (so a checkpoint of its state resumes the
    same orders); restart r's order comes from a generator seeded with that integer plus its
    index in the whole fit, ``first_restart + r``. A restart's orders therefore do not depend on
    which other restarts train beside it (restart-parallel processes draw the same ones).
    """
    epoch_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    orders = [
        epoch_order(n_samples, torch.Generator().manual_seed(epoch_seed + first_restart + r), buffer_size)
        for r in range(n_restarts)
    ]
    return torch.stack(orders)


def per_restart_batch(columns: Tensor, index: Tensor, n_components: int) -> Tensor:
    """The points of each restart's batch for each of its flows: columns (D, N), index (R, n) -> (R * K, D, n)."""
    batch = columns[:, index].permute(1, 0, 2)  # (R, D, n)
    return batch.repeat_interleave(n_components, dim=0)
