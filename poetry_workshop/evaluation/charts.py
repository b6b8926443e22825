"""One PNG per metric group: a small panel per metric, the configurations side by side.

Each metric keeps its own axis (a share and a rate per 1,000 words do not share a scale),
and each panel's title says which way is better. Rendered with matplotlib's Agg backend,
so no display is needed.
"""

from __future__ import annotations

import io
import math

from poetry_workshop.evaluation.metrics import GROUPS, group_metrics
from poetry_workshop.evaluation.report import GROUP_TITLES, fmt

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")


def render_charts(metrics: dict[str, dict[str, dict[str, float | None]]], labels: list[str]) -> dict[str, bytes]:
    """group -> PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # a Figure without pyplot keeps no global state

    out = {}
    for group in GROUPS:
        panels = group_metrics(group)
        cols = min(4, len(panels))
        rows = math.ceil(len(panels) / cols)
        fig = Figure(figsize=(3.2 * cols, 2.8 * rows), dpi=100)
        fig.suptitle(f"{GROUP_TITLES[group]} metrics", fontsize=12)
        for i, metric in enumerate(panels):
            ax = fig.add_subplot(rows, cols, i + 1)
            values = [metrics[label][group][metric.key] for label in labels]
            heights = [(v * 100 if metric.share else v) if v is not None else 0.0 for v in values]
            bars = ax.bar(range(len(labels)), heights, color=[_COLOURS[k % len(_COLOURS)] for k in range(len(labels))])
            ax.bar_label(bars, labels=[fmt(metric, v) for v in values], fontsize=7)
            ax.set_xticks(range(len(labels)), labels, fontsize=8, rotation=20 if len(labels) > 2 else 0)
            arrow = {"higher": " (higher better)", "lower": " (lower better)"}.get(metric.better, "")
            ax.set_title(metric.title + arrow, fontsize=8)
            if metric.share:
                ax.set_ylim(0, 100)
                ax.set_ylabel("%", fontsize=8)
            ax.tick_params(axis="y", labelsize=7)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
        out[group] = buffer.getvalue()
    return out
