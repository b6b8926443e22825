"""Every key of the app in one table: id, default key, label, and what it does.

The ids are what `[keys]` in config/app.toml remaps; the footer, the help screen and the
command palette are all built from this table, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class KeyAction:
    id: str
    key: str
    action: str
    label: str
    help: str
    show: bool = True


WORKSHOP_KEYS = [
    KeyAction("new", "n", "new", "New", "start a new request or workshop another poem", show=False),
    KeyAction("revise", "r", "revise", "Revise", "the Poet revises from the current critique, then the Educator follows up"),
    KeyAction("critique", "c", "critique", "Critique", "the Educator critiques the current draft (again)"),
    KeyAction("edit", "e", "edit", "Edit", "edit the poem yourself; Ctrl+S saves it as a new draft, Esc cancels"),
    KeyAction("save_edit", "ctrl+s", "save_edit", "Save", "save your edit as a new draft", show=False),
    KeyAction("ask", "k", "ask", "Ask", "ask the Educator a craft question (answered as a short lesson)",
              show=False),
    # Off the footer (so the rest fits 80 columns): the history pane's own border says it.
    KeyAction("branch", "b", "branch", "Branch", "continue from the entry selected in the history", show=False),
    KeyAction("accept", "a", "accept", "Accept", "mark the current draft as the final poem"),
    KeyAction("stop", "escape", "stop", "Stop", "stop generating (keeps the partial text, marked stopped)"),
    KeyAction("export", "x", "export", "Export", "export the session to a Markdown file in the export folder"),
    KeyAction("export_poem", "t", "export_poem", "Poem .txt", "save the poem alone as a .txt file in the export folder",
              show=False),
    KeyAction("copy", "y", "copy", "Copy", "copy the current poem to the clipboard"),
    KeyAction("auto", "o", "auto", "Auto", "run several revise/critique rounds unattended (Esc stops)"),
    KeyAction("gutter", "l", "gutter", "Lines", "show or hide the craft gutter: syllables, stress and rhyme per line",
              show=False),
    KeyAction("undo", "u", "undo", "Undo", "take back the last step: a new draft, an edit or an accept", show=False),
]

START_KEYS = [
    KeyAction("start.workshop_poem", "ctrl+s", "workshop_poem", "Workshop my poem",
              "workshop the poem in the poem area"),
    KeyAction("session_rename", "r", "rename", "Rename", "rename the session selected in the list"),
    KeyAction("session_delete", "d,delete", "delete", "Delete", "delete the session selected in the list (asks first)"),
]

BUILD_KEYS = [
    KeyAction("build_start", "s", "start", "Start", "start the build, or resume where it stopped (asks before spending)"),
    KeyAction("build_cancel", "c", "cancel", "Cancel", "stop at the next record or training step; start again to resume"),
    KeyAction("build_use_educator", "u", "use_educator", "Use Educator", "make the exported Educator the app's Educator"),
    KeyAction("build_use_poet", "p", "use_poet", "Use Poet", "make the exported Poet the app's Poet"),
    KeyAction("build_eval", "v", "eval", "Eval", "compare the app's models with the starter model; show the report"),
    KeyAction("build_save", "ctrl+s", "save_settings", "Save", "save the settings below to your user config"),
    KeyAction("build_back", "escape", "back", "Back", "back to the workshop (a build keeps running)"),
]

MODELS_KEYS = [
    KeyAction("models_use_educator", "u", "use_educator", "Educator", "make the selected model the Educator, now and from now on"),
    KeyAction("models_use_poet", "p", "use_poet", "Poet", "make the selected model the Poet, now and from now on"),
    KeyAction("models_get", "g", "get", "Get", "download the selected catalogue model (the workshop stays usable)"),
    KeyAction("models_back", "escape", "back", "Back", "back to where you were (a download keeps going)"),
]

APP_KEYS = [
    KeyAction("models", "f2", "models", "Models", "the Models screen: the models here, the catalogue, switch or get one",
              show=False),
    KeyAction("build", "f5", "build", "Build", "the build screen: make your own Educator and Poet", show=False),
    KeyAction("help", "f1,question_mark", "help", "Help", "show every key"),
    KeyAction("quit", "ctrl+q", "quit", "Quit", "quit (the session is already saved)"),
]


# The help screen's groups, in order: a key means one thing within a group.
KEY_GROUPS = [
    ("Everywhere", APP_KEYS),
    ("Start screen", START_KEYS),
    ("Workshop screen", WORKSHOP_KEYS),
    ("Build screen (F5)", BUILD_KEYS),
    ("Models screen (F2)", MODELS_KEYS),
]
ALL_KEYS = [action for _, group in KEY_GROUPS for action in group]


def key_label(keymap: dict[str, str], action_id: str) -> str:
    """The key a person presses for `action_id`, as mapped, for hints on screen ("F2")."""
    default = next(a.key for a in ALL_KEYS if a.id == action_id)
    first = keymap.get(action_id, default).split(",")[0]
    return first.upper() if len(first) <= 3 and first[0] == "f" else first


def bindings(actions: list[KeyAction]) -> list[Binding]:
    return [Binding(a.key, a.action, a.label, show=a.show, id=a.id, tooltip=a.help) for a in actions]
