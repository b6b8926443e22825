"""The user turns the session sends to each role, and the cleaning of what comes back.

The wording follows the persona documents: the Educator's critique structure and brief
fields (persona/pedagogy_design_doc.md) and the Poet's output contract (persona/poet_voice.md).
Line numbering matches the pedagogy doc: line 1 is the poem's first line; blank lines are
not counted.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[\w-]*\s*$")
_CHATTER = re.compile(
    r"^(here('s| is)\b.*|sure\b.*|certainly\b.*|of course\b.*|okay\b.*|revised (poem|draft)\b.*)[:!.]\s*$",
    re.IGNORECASE,
)
_ROLE_HEADER = re.compile(r"^(assistant|user|system|poet|educator)\s*:?\s*$", re.IGNORECASE)


def numbered(poem: str) -> str:
    """The poem with its line numbers, blank lines kept but not counted."""
    out, n = [], 0
    for line in poem.strip("\n").splitlines():
        if line.strip():
            n += 1
            out.append(f"{n:>2}  {line}")
        else:
            out.append("")
    return "\n".join(out)


def brief_request(request: str) -> str:
    return (
        f"A writer asks for a poem: {request.strip()}\n\n"
        "Turn this request into a brief for the Poet with these fields: Form, Length (lines), "
        "Speaker, Anchor (one concrete image or setting), Register, Constraint (one), Avoid. "
        "Write only the brief."
    )


def draft_request(brief: str) -> str:
    return f"Brief:\n{brief.strip()}\n\nWrite the poem. Output only the poem."


def critique_request(poem: str) -> str:
    return (
        "Workshop this draft. Its lines are numbered for reference:\n\n"
        f"{numbered(poem)}\n\n"
        "Write your critique."
    )


def followup_request(poem: str) -> str:
    return (
        "The writer revised the poem. The new draft, lines numbered:\n\n"
        f"{numbered(poem)}\n\n"
        "Respond to what changed since your last critique: what changed, whether it answered "
        "your point, what is now most alive, and the next single direction."
    )


def revise_request(critique: str, current_draft: str | None) -> str:
    """`current_draft` is given when the Poet's last reply is not the draft being revised
    (the person edited it, or it is the person's own poem)."""
    draft = f"The current draft:\n\n{current_draft.strip()}\n\n" if current_draft else ""
    return (
        f"{draft}The Educator's critique of the draft:\n\n{critique.strip()}\n\n"
        "Revise the poem from this critique: change what it flagged, keep what it praised. "
        "Output only the revised poem."
    )


def autopsy_request(poem: str) -> str:
    return (
        "Perform a cliché autopsy on this poem. Its lines are numbered for reference:\n\n"
        f"{numbered(poem)}"
    )


def comparison_request(poem_a: str, poem_b: str) -> str:
    return (
        f"Compare these two poems.\n\nPoem A, lines numbered:\n\n{numbered(poem_a)}\n\n"
        f"Poem B, lines numbered:\n\n{numbered(poem_b)}"
    )


def question_request(question: str) -> str:
    return f"A craft question from the writer: {question.strip()}\n\nAnswer it as a short lesson."


def strip_special(text: str, specials: list[str]) -> str:
    for marker in specials:
        text = text.replace(marker, "")
    return text


def clean_reply(text: str, specials: list[str] = ()) -> str:
    """Prose from the Educator, without special-token text or a leaked role header."""
    lines = strip_special(text, list(specials)).strip().splitlines()
    while lines and (_ROLE_HEADER.match(lines[0].strip()) or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(lines).strip()


def clean_poem(text: str, specials: list[str] = ()) -> str:
    """A poem from the Poet: no role header, no chat preamble, no code fences."""
    lines = clean_reply(text, specials).splitlines()
    lines = [line for line in lines if not _FENCE.match(line.strip())]
    while lines and (_CHATTER.match(lines[0].strip()) or not lines[0].strip()):
        lines.pop(0)
    return "\n".join(line.rstrip() for line in lines).strip()
