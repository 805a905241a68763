"""Positions, distances and shapes (plane metres and WGS84 lat/lon)."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


class Position:
    """A point: plane (x, y) metres, or geo (lat, lon) degrees."""

    __slots__ = ("geo", "x", "y")

    def __init__(self, x: float, y: float, geo: bool) -> None:
        self.x = x
        self.y = y
        self.geo = geo

    def __repr__(self) -> str:
        return f"Position({self.x}, {self.y}, geo={self.geo})"


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def distance_m(a: Position, b: Position) -> float | None:
    """Metres between two positions of the same kind; None for a plane/geo mix."""
    if a.geo != b.geo:
        return None
    if a.geo:
        return haversine_m(a.x, a.y, b.x, b.y)
    return math.hypot(a.x - b.x, a.y - b.y)


def point_in_polygon(x: float, y: float, corners: list[tuple[float, float]]) -> bool:
    """Even-odd rule; a point on an edge or corner counts as inside."""
    inside = False
    n = len(corners)
    for i in range(n):
        x1, y1 = corners[i]
        x2, y2 = corners[(i + 1) % n]
        if _on_segment(x, y, x1, y1, x2, y2):
            return True
        if (y1 > y) != (y2 > y):
            cross_x = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < cross_x:
                inside = not inside
    return inside


def _on_segment(x: float, y: float, x1: float, y1: float, x2: float, y2: float) -> bool:
    cross = (x - x1) * (y2 - y1) - (y - y1) * (x2 - x1)
    if abs(cross) > 1e-9 * max(1.0, abs(x2 - x1) + abs(y2 - y1)):
        return False
    return min(x1, x2) - 1e-12 <= x <= max(x1, x2) + 1e-12 and \
        min(y1, y2) - 1e-12 <= y <= max(y1, y2) + 1e-12


def polygon_centroid(corners: list[tuple[float, float]]) -> tuple[float, float]:
    """Area centroid (falls back to the mean of the corners for a degenerate polygon)."""
    area2 = cx = cy = 0.0
    n = len(corners)
    for i in range(n):
        x1, y1 = corners[i]
        x2, y2 = corners[(i + 1) % n]
        cross = x1 * y2 - x2 * y1
        area2 += cross
        cx += (x1 + x2) * cross
        cy += (y1 + y2) * cross
    if abs(area2) < 1e-12:
        return (sum(c[0] for c in corners) / n, sum(c[1] for c in corners) / n)
    return (cx / (3 * area2), cy / (3 * area2))
