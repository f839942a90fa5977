"""Several choices at once as a row of check boxes: a click ticks one (a multi-select list needs Ctrl-click)."""
from __future__ import annotations

from typing import Callable, Sequence

import ipywidgets as w


class Picks:
    """Check boxes with the interface of a ``SelectMultiple``: ``options``, ``value`` (the ticked options,
    in the order of ``options``) and ``observe(callback, names="value")``. Display ``picks.widget``.

    >>> picks = Picks([1, 2, 4, 8], value=(1, 8), description="tensor parallel")
    >>> picks.boxes[2].value = True
    >>> picks.value
    (1, 4, 8)
    >>> picks.options = [1, 2, 4]          # 8 is no longer offered: it is dropped from the value
    >>> picks.value
    (1, 4)
    """

    def __init__(self, options: Sequence = (), value: Sequence = (), description: str = "", columns: int = 4,
                 label_width: str = "120px"):
        self._callbacks: list[Callable] = []
        self._options: tuple = ()
        self._quiet = False
        self.boxes: list[w.Checkbox] = []
        self.grid = w.GridBox(layout=w.Layout(grid_template_columns=f"repeat({columns}, max-content)",
                                              grid_gap="0 12px"))
        self.widget = w.HBox([w.HTML(description, layout=w.Layout(width=label_width, flex="0 0 auto")), self.grid])
        self.options = options
        self.value = value

    @property
    def options(self) -> tuple:
        return self._options

    @options.setter
    def options(self, options: Sequence) -> None:
        before = self.value if self.boxes else ()
        self._options = tuple(options)
        self.boxes = [w.Checkbox(value=False, description=str(o), indent=False,
                                 layout=w.Layout(width="max-content")) for o in self._options]
        for box in self.boxes:
            box.observe(self._changed, names="value")
        self.grid.children = self.boxes
        self._set(tuple(o for o in before if o in self._options), notify=before != self.value)

    @property
    def value(self) -> tuple:
        return tuple(o for o, box in zip(self._options, self.boxes) if box.value)

    @value.setter
    def value(self, value: Sequence) -> None:
        self._set(tuple(value))

    def _set(self, value: tuple, notify: bool = True) -> None:
        old = self.value
        self._quiet = True
        try:
            for option, box in zip(self._options, self.boxes):
                box.value = option in value
        finally:
            self._quiet = False
        if notify and self.value != old:
            self._notify(old)

    def observe(self, callback: Callable, names: str = "value") -> None:
        """Call ``callback({"name": "value", "old": ..., "new": ...})`` after every change of ``value``."""
        self._callbacks.append(callback)

    def add_class(self, name: str) -> None:
        self.widget.add_class(name)

    def _changed(self, change) -> None:
        if not self._quiet:
            new = self.value
            old = tuple(o for o in new if o != self._options[self.boxes.index(change["owner"])]) if change["new"] \
                else new + (self._options[self.boxes.index(change["owner"])],)
            self._notify(old)

    def _notify(self, old: tuple) -> None:
        for callback in self._callbacks:
            callback({"name": "value", "old": old, "new": self.value, "owner": self})
