"""The app's own widgets: the poem pane, the revision-history tree and the status bar."""

from __future__ import annotations

from dataclasses import replace

from rich.style import Style
from rich.text import Text
from textual.widgets import Static, TextArea, Tree
from textual.widgets.text_area import TextAreaTheme

from poetry_workshop.verse.quotes import QuotedSpan
from poetry_workshop.workshop.store import Node, RevisionTree
from poetry_workshop.workshop.transcript import cut_at

QUOTED = "workshop.quoted"

_LABELS = {
    ("request", "person"): "Request",
    ("brief", "educator"): "Brief",
    ("draft", "poet"): "Draft {n} · Poet",
    ("draft", "person"): "Draft {n} · you",
    ("critique", "educator"): "Critique",
    ("question", "person"): "Question",
    ("answer", "educator"): "Answer",
}


class PoemArea(TextArea):
    """The current draft with line numbers; quoted passages of the critique highlighted.

    Read-only until the person chooses to edit, so single-key bindings reach the screen."""

    def __init__(self, **kwargs):
        self.quoted: list[QuotedSpan] = []  # set before TextArea builds its first highlight map
        super().__init__("", show_line_numbers=True, read_only=True, soft_wrap=True, **kwargs)

    def on_mount(self) -> None:
        base = TextAreaTheme.get_builtin_theme("css") or TextAreaTheme(name="css")
        styles = {**base.syntax_styles, QUOTED: Style(bgcolor="#5f5f00", bold=True)}
        self.register_theme(replace(base, name="workshop", syntax_styles=styles))
        self.theme = "workshop"

    def show(self, text: str, quoted: list[QuotedSpan] | None = None) -> None:
        self.quoted = list(quoted or [])
        self.load_text(text)

    def _build_highlight_map(self) -> None:
        # TextArea highlights come from a syntax tree; quotes are added on top of it.
        super()._build_highlight_map()
        for span in self.quoted:
            self._highlights[span.row].append((span.start, span.end, QUOTED))


class HistoryTree(Tree[str]):
    """The revision history: drafts are the trunk and its branches; critiques, follow-ups,
    questions and answers hang under the draft they are about.

    A second critique of a draft is a sibling under it, not a branch; a branch is a draft
    whose previous draft already had a later one. A branch chosen with `b` and not yet
    stepped on shows at once, as a placeholder under the entry it starts from."""

    PENDING = "⑂ new branch: the next step starts here"

    def __init__(self, **kwargs):
        super().__init__("Session", **kwargs)
        self.show_root = False
        self.guide_depth = 2

    def rebuild(self, tree: RevisionTree, head_id: str | None) -> None:
        self.clear()
        history = DraftHistory(tree)
        head_path = {n.id for n in tree.path_to(head_id)} if head_id else set()
        # After `b` the head is an older entry than the newest: the next step starts a branch there.
        newest = max(tree.nodes.values(), key=lambda n: n.seq, default=None)
        pending = head_id is not None and newest is not None and newest.id != head_id
        highlight_line = None

        def item(parent, node: Node):
            nonlocal highlight_line
            styled = Text(history.label(node), style="bold" if node.id in head_path else "dim")
            added = parent.add(styled, data=node.id, expand=True)
            if node.id == head_id:
                highlight_line = added
            return added

        def line(parent, draft: Node) -> None:
            """`draft`, what hangs under it, and the drafts after it: the first one goes on
            at this level, each other one opens a branch under it."""
            while True:
                entry = item(parent, draft)
                for note in history.about(draft.id):
                    item(entry, note)
                if pending and history.draft_of(head_id) == draft.id:
                    entry.add(Text(self.PENDING, style="italic"), data=None)
                later = history.next_drafts(draft.id)
                for number, branch in enumerate(later[1:], start=2):
                    fork = entry.add(Text(f"⑂ Branch {number} from draft {history.number(draft.id)}",
                                          style="italic"), data=None, expand=True)
                    line(fork, branch)
                if not later:
                    return
                draft = later[0]

        for node in history.about(None):
            item(self.root, node)
        if pending and history.draft_of(head_id) is None:
            self.root.add(Text(self.PENDING, style="italic"), data=None)
        for draft in history.next_drafts(None):
            line(self.root, draft)
        self._leaves_as_leaves(self.root)
        if highlight_line is not None:
            self.call_after_refresh(self.move_cursor, highlight_line)


    def _leaves_as_leaves(self, parent) -> None:
        """No expand arrow on an entry with nothing under it."""
        for child in parent.children:
            child.allow_expand = bool(child.children)
            self._leaves_as_leaves(child)


class DraftHistory:
    """A revision tree read as drafts: which draft each node is about, each draft's number,
    and the drafts that came from each draft."""

    def __init__(self, tree: RevisionTree):
        self.tree = tree
        self._numbers = {n.id: i for i, n in enumerate(tree.drafts(), start=1)}
        self._draft_of: dict[str, str | None] = {}
        for node in sorted(tree.nodes.values(), key=lambda n: n.seq):
            parent = tree.nodes.get(node.parent_id) if node.parent_id else None
            if parent is None:
                self._draft_of[node.id] = None
            elif parent.kind == "draft":
                self._draft_of[node.id] = parent.id
            else:
                self._draft_of[node.id] = self._draft_of.get(parent.id)

    def draft_of(self, node_id: str | None) -> str | None:
        """The draft whose entry shows this node: a draft itself, else the draft it is about."""
        if node_id is None:
            return None
        if self.tree.nodes[node_id].kind == "draft":
            return node_id
        return self._draft_of.get(node_id)

    def number(self, draft_id: str) -> int:
        return self._numbers.get(draft_id, 0)

    def about(self, draft_id: str | None) -> list[Node]:
        """The critiques, follow-ups, questions and answers about `draft_id` (None: the request
        and brief before any draft), in the order they were made."""
        return [n for n in sorted(self.tree.nodes.values(), key=lambda n: n.seq)
                if n.kind != "draft" and self._draft_of[n.id] == draft_id]

    def next_drafts(self, draft_id: str | None) -> list[Node]:
        return [n for n in self.tree.drafts() if self._draft_of[n.id] == draft_id]

    def critiques(self, draft_id: str) -> list[Node]:
        return [n for n in self.about(draft_id) if n.kind == "critique"]

    def label(self, node: Node) -> str:
        if node.kind == "critique" and node.meta.get("action") == "follow-up":
            label = "Follow-up"
        elif node.kind == "question":
            first = node.text.splitlines()[0] if node.text else ""
            label = f"Question: {first[:28]}" + ("…" if len(first) > 28 else "")
        else:
            label = _LABELS.get((node.kind, node.author), node.kind).format(n=self.number(node.id))
        if node.meta.get("stopped"):
            label += " (stopped)"
        elif cut_at(node) is not None:
            label += " (cut)"
        return label


class StatusBar(Static):
    """Which model serves each role, what is generating, tokens/s, context use."""

    def __init__(self, models: str, **kwargs):
        super().__init__("", **kwargs)
        self.models = models
        self.activity = "idle"
        self.speed = ""
        self.context = ""

    def on_mount(self) -> None:
        self.refresh_text()

    def set_activity(self, activity: str, speed: str = "", context: str | None = None) -> None:
        self.activity, self.speed = activity, speed
        if context is not None:
            self.context = context
        self.refresh_text()

    def refresh_text(self) -> None:
        parts = [self.models, self.activity]
        if self.speed:
            parts.append(self.speed)
        if self.context:
            parts.append(self.context)
        self.update(" │ ".join(parts))
