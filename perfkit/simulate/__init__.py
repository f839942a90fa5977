"""``perfkit.simulate``: the reference for the open-loop load figures, one request at a time."""
from .core import LIMITS, simulate

__all__ = ["simulate", "LIMITS"]
