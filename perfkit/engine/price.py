"""Energy and money per output token: the deployment's chips at their board power (and price) over the
output tokens per second it serves.

``joules_per_output_token`` assumes every chip draws its full TDP the whole time: an upper bound (serving
chips often draw well below TDP, memory-bound decode especially), and it leaves out the host, network and
cooling. ``usd_per_million_output_tokens`` needs ``price_per_chip_hour``; perfkit has no default price.
"""
from __future__ import annotations

import numpy as np

from ..specs import HardwareSpec


def per_output_token(hw: HardwareSpec, chips, tokens_s, price_per_chip_hour=None) -> dict:
    """``joules_per_output_token`` (NaN where the hardware file gives no TDP) and, with a price,
    ``usd_per_million_output_tokens``."""
    tokens_s = np.asarray(tokens_s, dtype=float)
    watts = np.nan if hw.tdp_watts is None else hw.tdp_watts
    out = {"joules_per_output_token": chips * watts / tokens_s}
    if price_per_chip_hour is not None:
        out["usd_per_million_output_tokens"] = chips * price_per_chip_hour / 3600.0 / tokens_s * 1e6
    return out
