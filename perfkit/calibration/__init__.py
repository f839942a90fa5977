"""Calibration against measured serving points: load them, predict them, fit the engine, report the error.

- :mod:`.measurements`: the aiconfigurator silicon CSV layout -> engine configurations (``load``).
- :mod:`.predict`: engine predictions for measured rows (``predict``).
- :mod:`.fit`: hardware efficiencies (tied per architecture) and serving profiles (``fit``).
- :mod:`.split`: the documented held-out groups; :mod:`.report`: accuracy tables and ``ACCURACY.md``.
- :mod:`.params`: writing fitted values back into the YAML files; :mod:`.cli`: ``perfkit calibrate`` and
  ``perfkit accuracy``.
"""
