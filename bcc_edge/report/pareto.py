"""Which artifacts are worth considering: the Pareto front of cost (size, latency) vs accuracy."""

from __future__ import annotations

from typing import Sequence


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[bool]:
    """True for each point that no other point beats: lower-or-equal cost and higher-or-equal
    score, strictly better in at least one. Ties (equal cost and score) are all kept."""
    if len(costs) != len(scores):
        raise ValueError("costs and scores differ in length")
    points = list(zip(costs, scores))
    return [
        not any(c <= cost and s >= score and (c < cost or s > score) for c, s in points)
        for cost, score in points
    ]
