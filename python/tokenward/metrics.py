"""`tokenward.metrics`: the name /work/shared/DESIGN.md gives the metrics; the same collector and
`register` as `tokenward.prometheus` (the `tokenward[prometheus]` extra), which owns them."""

from .prometheus import TokenwardCollector, register

__all__ = ["TokenwardCollector", "register"]
