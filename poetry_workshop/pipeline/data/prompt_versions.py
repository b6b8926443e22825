"""Which records were made with each task's current prompt version, and which with an older one.

A task's prompt version is a hash of everything its requests say (the persona documents,
the instructions, the templates, the output schema: `TeachingTask.version`), and every
generated record carries the version it was made with. After a persona edit the old
records stay in their files; the stages that read them (the gate, prepare) keep only the
current version unless a person asks for the older ones too, and say how many they left out.
A record with no version at all was not made by this generator at this persona, so it
counts as older.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class VersionSplit:
    current: list[dict] = field(default_factory=list)
    older: list[dict] = field(default_factory=list)

    def older_by_task(self) -> Counter:
        return Counter(r.get("task", "?") for r in self.older)

    def describe_older(self, where: str, kept: bool) -> str | None:
        """One line on the older records: left out (and how to keep them) or kept on request."""
        if not self.older:
            return None
        tasks = ", ".join(f"{task} {n}" for task, n in sorted(self.older_by_task().items()))
        what = f"{where}: {len(self.older)} record(s) made with an earlier prompt version ({tasks})"
        if kept:
            return f"{what} are kept with the current ones, as --include-older-versions asks"
        return f"{what} were left out; add --include-older-versions to keep them, or regenerate them"


def current_versions(tasks: Iterable[str]) -> dict[str, str]:
    """Task name -> the prompt version its requests have now (tasks this code does not know are left out)."""
    from poetry_workshop.pipeline.data.tasks import TASKS

    return {name: TASKS[name].version() for name in set(tasks) if name in TASKS}


def split_by_version(records: Iterable[dict], versions: dict[str, str] | None = None) -> VersionSplit:
    """Records of their task's current prompt version, and the rest, each in their order."""
    records = list(records)
    versions = current_versions(r.get("task") for r in records) if versions is None else versions
    split = VersionSplit()
    for record in records:
        now = versions.get(record.get("task"))
        (split.current if now is not None and record.get("prompt_version") == now else split.older).append(record)
    return split
