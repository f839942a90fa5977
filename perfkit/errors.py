"""The one error family for bad input.

Every bad request raises a :class:`PerfkitError` (a ``ValueError``) whose message names the bad value and
lists the valid choices. ``field`` names the request field at fault (dotted path) so that the HTTP layer can
echo it; ``status`` is the HTTP status the server answers with.
"""
from __future__ import annotations

from difflib import get_close_matches
from typing import Iterable


class PerfkitError(ValueError):
    """Bad input: an unknown name, an impossible size, a layout the model or hardware cannot run."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict:
        return {"error": self.message, "field": self.field}


class NotFoundError(PerfkitError):
    """An unknown model or hardware id (HTTP 404)."""

    status = 404


class SpecError(PerfkitError):
    """A catalog file (hardware YAML, model config.json) that is malformed: a bug in the data, not the request."""


class CatalogError(SpecError):
    """A broken file of the server's own catalog (hardware, serving profiles, bundled or ``PERFKIT_MODEL_DIR``
    configs): HTTP 500 with the message, since no request can fix it."""

    status = 500


def choices_text(value, choices: Iterable) -> str:
    """'valid choices: a, b, c' plus a did-you-mean hint when ``value`` is close to one of them."""
    choices = [str(c) for c in choices]
    text = "valid choices: " + ", ".join(choices)
    close = get_close_matches(str(value), choices, n=1)
    if close:
        text = f"did you mean {close[0]!r}? {text}"
    return text
