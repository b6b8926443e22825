"""A session written out: Markdown for people, JSONL for programs.

Both follow the path from the root to the head (the line of work that led to the current
draft); the Markdown also names branches that were left, so nothing in the tree is hidden.
"""

from __future__ import annotations

import json
from pathlib import Path

from poetry_workshop.files import write_atomic
from poetry_workshop.workshop.store import Node, RevisionTree, SessionRecord

_HEADINGS = {
    ("request", "person"): "Request",
    ("brief", "educator"): "Brief (Educator)",
    ("draft", "poet"): "Draft {n} (Poet)",
    ("draft", "person"): "Draft {n} (you)",
    ("critique", "educator"): "Critique of draft {n} (Educator)",
    ("question", "person"): "Question",
    ("answer", "educator"): "Answer (Educator)",
}


def cut_at(node: Node) -> int | None:
    """The token count a generated node was cut at by its max_tokens limit, else None."""
    stats = node.meta.get("stats") or {}
    if stats.get("finish_reason") == "length" and not node.meta.get("stopped"):
        return int(stats.get("generated_tokens", 0))
    return None


def cut_note(node: Node) -> str | None:
    """"(cut at N tokens)" and the way on, for a node that hit its length limit."""
    tokens = cut_at(node)
    if tokens is None:
        return None
    limit = "draft" if node.kind == "draft" else node.kind
    again = "r revises again" if node.kind == "draft" else "c asks for another" if node.kind == "critique" else ""
    way = f"raise `{limit}` under [inference_config.max_tokens] in your config" + (f", or {again}" if again else "")
    return f"(cut at {tokens} tokens: {way})"


def _heading(node: Node, draft_number: int) -> str:
    label = _HEADINGS.get((node.kind, node.author), node.kind.capitalize())
    label = label.format(n=draft_number)
    if node.meta.get("stopped"):
        label += " — stopped"
    if (tokens := cut_at(node)) is not None:
        label += f" — cut at {tokens} tokens"
    return label


def to_markdown(record: SessionRecord, tree: RevisionTree) -> str:
    path = tree.path_to(record.head_id)
    mode = "write with the Poet" if record.mode == "write" else "workshop my poem"
    lines = [
        f"# {record.title}",
        "",
        f"- session: `{record.id}` ({mode}), started {record.created_at}, status {record.status}",
    ]
    for role, model in sorted(record.models.items()):
        lines.append(f"- {role}: `{Path(model).name}`")
    lines.append("")
    draft_number = 0
    for node in path:
        if node.kind == "draft":
            draft_number += 1
        lines += [f"## {_heading(node, draft_number)}", ""]
        if node.kind == "draft":
            lines += ["```text", node.text, "```"]
        else:
            lines.append(node.text)
        if (note := cut_note(node)) is not None:
            lines += ["", f"_{note}_"]
        others = [c for c in tree.children(node.id) if c not in path]
        if others:
            lines += ["", f"_{len(others)} other branch(es) from here: " + ", ".join(f"`{c.id}`" for c in others) + "_"]
        lines.append("")
    final = next((n for n in reversed(path) if n.kind == "draft"), None)
    if final is not None:
        lines += ["## Final poem" if record.status == "accepted" else "## Current draft", "", final.text, ""]
    return "\n".join(lines)


def to_records(record: SessionRecord, tree: RevisionTree) -> list[dict]:
    out = []
    for node in tree.path_to(record.head_id):
        item = {
            "session": record.id,
            "node": node.id,
            "parent": node.parent_id,
            "seq": node.seq,
            "kind": node.kind,
            "author": node.author,
            "text": node.text,
            "created_at": node.created_at,
        }
        for key in ("action", "stats", "stopped"):
            if key in node.meta:
                item[key] = node.meta[key]
        out.append(item)
    return out


def write_session_files(record: SessionRecord, tree: RevisionTree, stem: Path) -> tuple[Path, Path]:
    """`stem`.jsonl and `stem`.md for one session."""
    jsonl = stem.with_suffix(".jsonl")
    markdown = stem.with_suffix(".md")
    write_atomic(jsonl, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in to_records(record, tree)))
    write_atomic(markdown, to_markdown(record, tree))
    return jsonl, markdown
