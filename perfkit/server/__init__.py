"""perfkit's HTTP API (Flask): ``create_app()`` and the ``perfkit serve`` command.

Flask is imported only inside this package, so the rest of perfkit runs without it.
"""
from .app import create_app

__all__ = ["create_app"]
