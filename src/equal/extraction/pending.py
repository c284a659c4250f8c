"""A batch of extractions sent together and handed over in order, a slice at a time, as their answers arrive."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

Slice = Callable[[int, int], list[T]]
"""``(start, stop)`` -> the batch's items ``start:stop``, once they are there (it may wait for them)."""


class Pending(Generic[T]):
    """The items of a submitted batch, taken in order: the first ``n``, then the next ``m``...

    A caller that takes a round's extractions pull by pull can reward the
    first pull while the answers of the last are still arriving; one that
    takes them all at once (:meth:`rest`) waits for the whole batch.

    Args:
        size: the number of items in the batch.
        items: hands over ``start:stop``; called with consecutive slices only.
    """

    def __init__(self, size: int, items: Slice[T]) -> None:
        self.size = size
        self._items = items
        self._taken = 0

    @classmethod
    def ready(cls, items: Sequence[T]) -> Pending[T]:
        """A batch whose items are all there already."""
        return cls(len(items), lambda start, stop: list(items[start:stop]))

    def take(self, count: int) -> list[T]:
        """The next ``count`` items (fewer at the end of the batch), waiting for them if need be."""
        start, self._taken = self._taken, min(self.size, self._taken + count)
        return self._items(start, self._taken)

    def rest(self) -> list[T]:
        """Every item not taken yet."""
        return self.take(self.size - self._taken)

    def then(self, finish: Callable[[int, int, list[T]], list[T]]) -> Pending[T]:
        """The same batch, each slice passed through ``finish(start, stop, items)`` as it is taken."""
        return Pending(self.size, lambda start, stop: finish(start, stop, self.take(stop - start)))
