"""The facts the kernel and the view share, from the one file both read (constants.json).

The view (js/constants.ts) imports the same file at build time, so the wire format's version, the
colour ramps, palettes and layout numbers that `to_png` draws with, and the list of traits the view
reads are each written once.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

CONSTANTS: dict[str, Any] = json.loads(resources.files(__package__).joinpath("constants.json").read_text("utf-8"))
WIRE: dict[str, Any] = CONSTANTS["wire"]
PRESENTATION: dict[str, Any] = CONSTANTS["presentation"]
VIEW_TRAITS: tuple[str, ...] = tuple(CONSTANTS["view_traits"])
GENERATION: dict[str, int] = CONSTANTS["generation"]
"""The traits the view reads: js/widget.ts's `Model`, one to one."""
