"""Measuring pages in the browser: what sticks out of its box, and WCAG contrast of colours."""

from __future__ import annotations

# ``el => [...]``: the element's text colour and the first opaque background behind it, as
# [r, g, b] lists (computed styles; SVG shapes give their fill as the "text" colour).
COLOURS_JS = """
el => {
  const rgb = value => (value.match(/[\\d.]+/g) || []).map(Number);
  const opaque = value => {
    const c = rgb(value);
    return c.length === 3 || (c.length === 4 && c[3] > 0.5);
  };
  const style = getComputedStyle(el);
  const fg = el instanceof SVGElement ? style.fill : style.color;
  let node = el instanceof SVGElement ? el.ownerSVGElement.parentElement : el;
  while (node && !opaque(getComputedStyle(node).backgroundColor)) node = node.parentElement;
  const bg = getComputedStyle(node || document.body).backgroundColor;
  return [rgb(fg).slice(0, 3), rgb(bg).slice(0, 3)];
}
"""

# ``el => bool``: whether the input's placeholder text fits its box (measured as a value).
PLACEHOLDER_FITS_JS = """
el => {
  const value = el.value;
  el.value = el.placeholder;
  const fits = el.scrollWidth <= el.clientWidth;
  el.value = value;
  return fits;
}
"""


def luminance(rgb: list[float]) -> float:
    def channel(value: float) -> float:
        value /= 255
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(v) for v in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(first: list[float], second: list[float]) -> float:
    """WCAG 2 contrast ratio of two sRGB colours (1 to 21)."""
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def contrast_of(locator) -> float:
    """Contrast of the first element ``locator`` finds against what is behind it."""
    fg, bg = locator.first.evaluate(COLOURS_JS)
    return contrast(fg, bg)


def overflow(locator) -> int:
    """How many pixels the element's content is wider than its box (0: it fits)."""
    return locator.evaluate("el => Math.max(0, el.scrollWidth - el.clientWidth)")


def cells_overflowing(page, selector: str) -> list[str]:
    """The text of every cell under ``selector`` whose content is wider than the cell."""
    return page.locator(selector).evaluate_all(
        "cells => cells.filter(c => c.scrollWidth > c.clientWidth + 1).map(c => c.innerText)"
    )


def right_edge(locator) -> float:
    box = locator.bounding_box()
    assert box is not None, f"{locator} is not rendered"
    return box["x"] + box["width"]
