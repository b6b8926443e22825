"""Copying the poem: the system clipboard when a tool for it exists, else the terminal's.

Textual's own `copy_to_clipboard` sends OSC 52, which many terminals (and tmux without
`set-clipboard on`) silently ignore, so a tool is tried first and the person is told which
way the text went, or that it could not.
"""

from __future__ import annotations

import os
import shutil
import subprocess

_TOOLS = [
    ("pbcopy", ["pbcopy"]),
    ("wl-copy", ["wl-copy"]),
    ("xclip", ["xclip", "-selection", "clipboard"]),
    ("xsel", ["xsel", "--clipboard", "--input"]),
]


def copy_text(app, text: str) -> tuple[bool, str]:
    """Returns (copied for sure, what to tell the person)."""
    for name, command in _TOOLS:
        if shutil.which(name) is None:
            continue
        if name in ("xclip", "xsel") and not os.environ.get("DISPLAY"):
            continue
        try:
            subprocess.run(command, input=text.encode("utf-8"), check=True, timeout=5, capture_output=True)
            return True, f"The poem is on the clipboard (via {name})."
        except (OSError, subprocess.SubprocessError):
            continue
    if os.environ.get("TERM", "") in ("", "dumb") or os.environ.get("WORKSHOP_NO_OSC52"):
        return False, "This terminal gives no clipboard access: export the session with x instead."
    try:
        app.copy_to_clipboard(text)
    except Exception:  # a driver without clipboard support: say so rather than crash
        return False, "This terminal gives no clipboard access: export the session with x instead."
    return False, ("Sent to the terminal's clipboard (OSC 52). If nothing was copied, this terminal "
                   "does not allow it: export the session with x instead.")
