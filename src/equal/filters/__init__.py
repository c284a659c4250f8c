"""Filters on extracted pairs: decontamination against reference and evaluation sets."""

from equal.filters.decontamination import NgramIndex

__all__ = ["NgramIndex"]
