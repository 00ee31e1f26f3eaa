"""CT display windows (width / level in HU) and the contrast limits they give.

>>> contrast_limits("lung")
(-1350.0, 150.0)
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """A display window: grey ramp of ``width_hu`` centred on ``level_hu``."""

    name: str
    width_hu: float
    level_hu: float

    @property
    def contrast_limits(self) -> tuple[float, float]:
        half = self.width_hu / 2.0
        return (float(self.level_hu - half), float(self.level_hu + half))


WINDOWS: dict[str, Window] = {
    w.name: w
    for w in (
        Window("lung", 1500.0, -600.0),
        Window("mediastinum", 350.0, 50.0),
        Window("bone", 1800.0, 400.0),
    )
}
DEFAULT_WINDOW = "lung"


def get_window(name: str) -> Window:
    """The preset called ``name`` (case-insensitive); ValueError naming the presets otherwise."""
    window = WINDOWS.get(str(name).strip().lower())
    if window is None:
        raise ValueError(f"unknown window {name!r}; the presets are {', '.join(WINDOWS)}")
    return window


def contrast_limits(window: str | Window = DEFAULT_WINDOW) -> tuple[float, float]:
    """``(low, high)`` HU for a preset name or a :class:`Window`."""
    return (window if isinstance(window, Window) else get_window(window)).contrast_limits


def window_from_limits(low: float, high: float, name: str = "custom") -> Window:
    """The window whose contrast limits are ``(low, high)``."""
    if not high > low:
        raise ValueError(f"contrast limits must rise: got ({low}, {high})")
    return Window(name, float(high - low), float((high + low) / 2.0))


PRESETS = WINDOWS
"""Alias of :data:`WINDOWS` (name -> :class:`Window`), in display order: lung, mediastinum, bone."""
