"""`tokenward.metrics`: another name for the metrics (the one the design notes use): the same
collector and `register` as `tokenward.prometheus` (the `tokenward[prometheus]` extra), which
owns them."""

from .prometheus import TokenwardCollector, register

__all__ = ["TokenwardCollector", "register"]
