"""The app's own widgets: the poem pane, the revision-history tree and the status bar."""

from __future__ import annotations

from dataclasses import replace

from rich.style import Style
from rich.text import Text
from textual.widgets import Static, TextArea, Tree
from textual.widgets.text_area import TextAreaTheme

from poetry_workshop.verse.quotes import QuotedSpan
from poetry_workshop.workshop.store import Node, RevisionTree

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
    """The revision tree: drafts, critiques, briefs, questions; branches as siblings."""

    def __init__(self, **kwargs):
        super().__init__("Session", **kwargs)
        self.show_root = False
        self.guide_depth = 2

    def rebuild(self, tree: RevisionTree, head_id: str | None) -> None:
        self.clear()
        draft_numbers = {n.id: i for i, n in enumerate(tree.drafts(), start=1)}
        head_path = {n.id for n in tree.path_to(head_id)} if head_id else set()
        highlight_line = None

        def add(parent, node: Node) -> None:
            nonlocal highlight_line
            label = _LABELS.get((node.kind, node.author), node.kind).format(n=draft_numbers.get(node.id, "?"))
            if node.meta.get("stopped"):
                label += " (stopped)"
            styled = Text(label, style="bold" if node.id in head_path else "dim")
            children = tree.children(node.id)
            # A straight line of work reads best flat: only branch points indent.
            item = parent.add(styled, data=node.id, expand=True, allow_expand=len(children) > 1)
            if node.id == head_id:
                highlight_line = item
            if len(children) == 1:
                add(parent, children[0])
            else:
                for number, child in enumerate(children, start=1):
                    branch = item.add(Text(f"Branch {number}", style="italic"), data=None, expand=True)
                    add(branch, child)

        for root in tree.children(None):
            add(self.root, root)
        if highlight_line is not None:
            self.call_after_refresh(self.move_cursor, highlight_line)


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
