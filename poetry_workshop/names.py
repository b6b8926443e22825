"""The names every layer shares, defined once: the two roles and the seven teaching tasks."""

from __future__ import annotations

ROLES = ("educator", "poet")
"""The two models of the workshop, in the order they are built and listed."""

TASK_NAMES = ("critiques", "briefs", "lessons", "autopsies", "comparisons", "dialogues", "poet-pairs")
"""The teaching-data tasks, in the order a build generates them: dialogues continue
critiques and poet-pairs write from briefs, so each comes after what it builds on."""
