"""Sweeps: every configuration of a grid (or of a list of requests) evaluated into one tidy DataFrame.

``perfkit.sweep`` builds the table; :mod:`perfkit.sweeps.analysis` reads it (Pareto fronts, the best
configuration under constraints, the largest batch that fits); :mod:`perfkit.sweeps.export` streams it to
CSV or Parquet without holding it in memory; :mod:`perfkit.sweeps.distributed` runs it on Dask.
"""
from .analysis import best_config, max_batch_that_fits, pareto_front
from .core import iter_frames, request_of, sweep

__all__ = ["sweep", "iter_frames", "request_of", "pareto_front", "best_config", "max_batch_that_fits"]
