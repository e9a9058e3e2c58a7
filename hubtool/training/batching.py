"""Batches with little padding: length-grouped sampling (the task's collator pads)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class LengthGroupedBatchSampler:
    """Batches of similar lengths, in shuffled order, the same for a given (seed, epoch).

    Each epoch shuffles the examples, cuts them into mega-batches of ``50 × batch_size``,
    sorts each mega-batch by length, cuts it into batches, and shuffles the batches. Padding
    stays near the real token count while the order stays random. Without grouping it is a
    plain seeded shuffle.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int,
        group: bool = True,
        shuffle: bool = True,
        mega: int = 50,
    ) -> None:
        # A plain list: a datasets Column would read Arrow once per element while sorting.
        self.lengths = lengths[:] if hasattr(lengths, "__getitem__") else list(lengths)
        self.batch_size, self.seed = batch_size, seed
        self.group, self.shuffle, self.mega = group, shuffle, mega
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.lengths) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + self.epoch)
        n = len(self.lengths)
        order = torch.randperm(n, generator=gen).tolist() if self.shuffle else list(range(n))
        size = self.batch_size
        if not self.group:
            yield from (order[i : i + size] for i in range(0, n, size))
            return
        batches: list[list[int]] = []
        span = size * self.mega
        for start in range(0, n, span):
            chunk = sorted(order[start : start + span], key=lambda i: -self.lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
        if self.shuffle:
            perm = torch.randperm(len(batches), generator=gen).tolist()
            batches = [batches[i] for i in perm]
        yield from batches
