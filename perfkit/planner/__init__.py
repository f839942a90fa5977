"""``perfkit.plan``: the layouts that meet latency SLOs under an open-loop load, ranked, with launch commands."""
from .core import Plan, plan
from .launch import ENGINES, command, commands

__all__ = ["plan", "Plan", "command", "commands", "ENGINES"]
