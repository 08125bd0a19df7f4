"""Contenders taken in turns, in a fresh random order each round.

Interleaving spreads a noisy machine's slow drifts over every contender
alike; a fresh order each round keeps any one from always following the
same other one. Seeded, so runs repeat the same order.

>>> list(interleaved(["a", "b"], rounds=2))
['a', 'b', 'a', 'b']
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator


def interleaved(names: Iterable[str], rounds: int, seed: int = 0) -> Iterator[str]:
    """Yields every name once per round, `rounds` times, shuffled per round."""
    order = list(names)
    shuffler = random.Random(seed)
    for _ in range(rounds):
        shuffler.shuffle(order)
        yield from order
