"""A stand-in for the Anthropic Messages API, served over real HTTP on 127.0.0.1.

This module owns the wire format that the teaching-data pipeline's tests and benchmark talk
to: the real `anthropic` SDK (reached through `base_url` / ANTHROPIC_BASE_URL) cannot tell it
from the service for the parts the pipeline uses, so tests exercise the client's real HTTP,
retry, streaming and batch code offline.

What it serves:

* ``POST /v1/messages``: plain and ``"stream": true`` (server-sent events in the same order
  and shape as the API's). A forced tool (``tool_choice`` ``{"type": "tool", "name": N}``,
  or ``{"type": "any"}`` meaning the first tool) is answered with a ``tool_use`` block whose
  input either comes from ``responder(body)`` or is filled in from the tool's
  ``input_schema``; anything else is answered with a short text block.
* ``POST /v1/messages/count_tokens``.
* Message Batches: create, retrieve (it ends after ``batch_polls`` retrievals), list (newest
  first, paged by ``limit``, ``before_id`` and ``after_id`` with ``first_id``, ``last_id`` and
  ``has_more`` as the API pages), cancel and ``results`` (JSON Lines, in an order unlike the
  submission's). ``batch_faults`` script what a create does: refuse, or make the batch and
  then answer with an error, answer late (the client times out) or hang up.
* Prompt caching accounting, scripted faults (``faults``, ``batch_faults``,
  ``batch_result_faults``), a fixed ``latency`` per request, a request log (``requests``), a
  log of what the API would bill (``billed``: every message composed, whether or not the
  client lived to read it) and an API-key check (``x-api-key``, or ``Authorization: Bearer``,
  which is how SDK 2.14 sends ``api_key=``).

Token counts are approximate but self-consistent: ``ceil(len(text) / 4)`` for each prompt
item (tool, system block, message block) serialised as canonical JSON without its
``cache_control``, so counts do not move when a cache breakpoint does. A cacheable prefix
runs, in the order tools -> system -> messages, up to and including the last item marked
``"cache_control": {"type": "ephemeral"}`` (a top-level ``cache_control`` marks the last
item). It is cached only from ``min_cache_tokens`` tokens on; the cache lasts as long as the
server does.

Only the standard library is used, so the server also runs as a demo:
``python tests/claude_server.py --port 8765 [--latency 0.1]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import socket
import struct
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["ClaudeServer", "count_text_tokens", "prompt_tokens"]

Responder = Callable[[dict], "dict | str | None"]

# The error `type` the API reports for each status. The SDK picks its exception class from
# the status (529 -> OverloadedError, other 5xx -> InternalServerError or a subclass) and,
# where present, `error.details.error_code`, which this server never sends.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your organization's rate limit."),
    500: ("api_error", "Internal server error."),
    503: ("api_error", "Service unavailable."),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}
REASONS = {529: "Overloaded"}  # http.server knows no phrase for the API's own status

BATCH_RESULT_FAULTS = ("errored", "invalid", "expired", "canceled")
REFUSAL_TEXT = "I can't help with that."

WORDS = (
    "amber", "harbor", "willow", "lantern", "quiet", "river", "gravel", "meadow", "silver",
    "hollow", "tide", "sparrow", "winter", "orchard", "candle", "stone", "morning", "thistle",
    "salt", "wind", "field", "thread", "fern", "garden", "rain", "copper", "moss", "dusk",
    "bell", "paper", "light", "shore", "breath", "window", "honey", "clover",
)

MAX_FILL_DEPTH = 8  # beyond this, recursive schemas get only what they require


# --------------------------------------------------------------------------- token accounting


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def count_text_tokens(text: str) -> int:
    """The server's token estimate for a piece of text: a token per four characters."""
    return math.ceil(len(text) / 4)


@dataclass(frozen=True)
class _Item:
    text: str  # canonical JSON of one prompt item, without its cache_control
    breakpoint: bool  # the item carries an ephemeral cache_control


def _prompt_items(body: dict) -> list[_Item]:
    """Tools, then system, then messages: the order in which the API builds (and caches) a prompt."""
    items: list[_Item] = []

    def add(item: Any, **extra: Any) -> None:
        if not isinstance(item, dict):
            items.append(_Item(canonical_json(item), False))
            return
        control = item.get("cache_control")
        marked = isinstance(control, dict) and control.get("type") == "ephemeral"
        clean = {key: value for key, value in item.items() if key != "cache_control"}
        items.append(_Item(canonical_json({**clean, **extra}), marked))

    for tool in body.get("tools") or []:
        add(tool)
    system = body.get("system")
    if isinstance(system, str):
        add({"type": "text", "text": system})
    elif isinstance(system, list):
        for block in system:
            add(block)
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            add(message)
            continue
        role, content = message.get("role"), message.get("content")
        if isinstance(content, list):
            for block in content:
                add(block, role=role)
        else:  # a plain string cannot carry cache_control
            add({"type": "text", "text": content}, role=role)

    control = body.get("cache_control")
    if items and isinstance(control, dict) and control.get("type") == "ephemeral":
        # Automatic caching: the API puts the breakpoint on the last block of the prompt.
        items[-1] = _Item(items[-1].text, True)
    return items


def prompt_tokens(body: dict) -> tuple[int, int, str | None]:
    """(total input tokens, tokens in the cacheable prefix, the prefix's cache key or None)."""
    items = _prompt_items(body)
    total = sum(count_text_tokens(item.text) for item in items)
    last = max((i for i, item in enumerate(items) if item.breakpoint), default=-1)
    if last < 0:
        return total, 0, None
    prefix = items[: last + 1]
    # The model is part of the key: the API keeps a separate cache per model.
    digest = hashlib.sha256()
    digest.update(str(body.get("model")).encode())
    for item in prefix:
        digest.update(b"\n" + item.text.encode())
    return total, sum(count_text_tokens(item.text) for item in prefix), digest.hexdigest()


# --------------------------------------------------------------------------- schema filler


def _seed(body: dict) -> int:
    # "stream" is left out so a streamed request gets the same answer as the plain one, and a
    # batch request the same answer as the equal direct request.
    without_stream = {key: value for key, value in body.items() if key != "stream"}
    return int(hashlib.sha256(canonical_json(without_stream).encode()).hexdigest()[:16], 16)


def _user_lines(body: dict) -> list[str]:
    """The non-empty lines of the last user message: what "quote" fields quote from."""
    for message in reversed(body.get("messages") or []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        else:
            text = "\n".join(
                block.get("text", "")
                for block in content or []
                if isinstance(block, dict) and block.get("type") == "text"
            )
        return [line.strip() for line in text.splitlines() if line.strip()]
    return []


def _sentence(rng: random.Random, low: int = 4, high: int = 9) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return " ".join(words).capitalize() + "."


class _SchemaFiller:
    """Builds a valid instance of a JSON Schema (the subset tool schemas use), reproducibly."""

    def __init__(self, root: dict, rng: random.Random, quote_lines: list[str]):
        self.root = root
        self.rng = rng
        self.quote_lines = quote_lines

    def fill(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        if depth > 4 * MAX_FILL_DEPTH:
            return None  # a schema that requires its own recursion has no finite instance
        if not isinstance(schema, dict):
            return _sentence(self.rng)  # `true` or a malformed schema: anything goes
        if "$ref" in schema:
            return self.fill(self._resolve(schema["$ref"]), name, depth + 1)
        schema = _with_described_constraints(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            choices = [value for value in schema["enum"] if value is not None] or schema["enum"]
            return self.rng.choice(choices)
        for key in ("anyOf", "oneOf"):
            if schema.get(key):
                options = [option for option in schema[key] if not self._is_null(option)]
                return self.fill((options or schema[key])[0], name, depth + 1)
        if schema.get("allOf"):
            merged: dict = {}
            for part in schema["allOf"]:
                merged.update(self._resolve(part["$ref"]) if "$ref" in part else part)
            merged.update({key: value for key, value in schema.items() if key != "allOf"})
            return self.fill(merged, name, depth + 1)

        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((each for each in kind if each != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref is supported, not {ref!r}")
        node: Any = self.root
        for part in ref.lstrip("#").strip("/").split("/"):
            if part:
                node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def _is_null(self, schema: Any) -> bool:
        if isinstance(schema, dict) and "$ref" in schema:
            schema = self._resolve(schema["$ref"])
        return isinstance(schema, dict) and schema.get("type") == "null"

    def _object(self, schema: dict, depth: int) -> dict:
        required = list(schema.get("required") or [])
        out = {}
        for key, sub in (schema.get("properties") or {}).items():
            if depth > MAX_FILL_DEPTH and key not in required:
                continue
            out[key] = self.fill(sub, key, depth + 1)
        for key in required:  # required but undeclared: any value is valid
            out.setdefault(key, _sentence(self.rng))
        return out

    def _array(self, schema: dict, name: str, depth: int) -> list:
        least = int(schema.get("minItems", 0))
        most = schema.get("maxItems")
        if depth > MAX_FILL_DEPTH:
            low = high = least
        else:  # one or two items by default, a little more than the minimum otherwise
            low = max(least, 1)
            high = max(low + 1, 2) if least else 2
        if most is not None:
            low, high = min(low, int(most)), min(high, int(most))
        items, seen = [], set()
        for _ in range(self.rng.randint(low, high)):
            value = self.fill(schema.get("items", {}), name, depth + 1)
            for _retry in range(5):  # uniqueItems: draw again rather than repeat
                if not schema.get("uniqueItems") or canonical_json(value) not in seen:
                    break
                value = self.fill(schema.get("items", {}), name, depth + 1)
            seen.add(canonical_json(value))
            items.append(value)
        return items

    def _bounds(self, schema: dict, step: float) -> tuple[float | None, float | None]:
        low, high = schema.get("minimum"), schema.get("maximum")
        if schema.get("exclusiveMinimum") is not None and not isinstance(schema["exclusiveMinimum"], bool):
            low = schema["exclusiveMinimum"] + step
        if schema.get("exclusiveMaximum") is not None and not isinstance(schema["exclusiveMaximum"], bool):
            high = schema["exclusiveMaximum"] - step
        return low, high

    def _integer(self, schema: dict) -> int:
        low, high = self._bounds(schema, 1)
        low = math.ceil(low) if low is not None else (1 if high is None or high >= 1 else math.floor(high) - 9)
        high = math.floor(high) if high is not None else low + 9
        return self.rng.randint(low, max(low, high))

    def _number(self, schema: dict) -> float:
        low, high = self._bounds(schema, 0.01)
        low = float(low) if low is not None else (0.0 if high is None or high >= 0 else high - 10.0)
        high = float(high) if high is not None else low + 10.0
        value = round(self.rng.uniform(low, max(low, high)), 2)
        return min(max(value, low), max(low, high))  # rounding must not step outside the bounds

    def _string(self, schema: dict, name: str) -> str:
        least, most = int(schema.get("minLength", 0)), schema.get("maxLength")
        lowered = name.lower()
        fmt = schema.get("format")
        if "quote" in lowered and self.quote_lines:
            text = self.rng.choice(self.quote_lines)
        elif fmt == "date-time":
            return "2025-03-14T09:26:53Z"
        elif fmt == "date":
            return "2025-03-14"
        elif fmt in ("uri", "url"):
            return f"https://example.com/{self.rng.choice(WORDS)}"
        elif fmt == "email":
            return f"{self.rng.choice(WORDS)}@example.com"
        elif "title" in lowered or lowered.endswith("name"):
            text = " ".join(word.capitalize() for word in (self.rng.choice(WORDS) for _ in range(3)))
        else:
            text = _sentence(self.rng)
        while len(text) < least:
            text += " " + self.rng.choice(WORDS)
        if most is not None and len(text) > int(most):
            cut = text[: int(most)]
            text = cut.rstrip() if len(cut.rstrip()) >= least else cut
        return text


_DESCRIBED = re.compile(r"\b(minLength|maxLength|minimum|maximum|minItems|maxItems): (-?\d+(?:\.\d+)?)\b")


def _with_described_constraints(schema: dict) -> dict:
    """Structured outputs do not enforce lengths and bounds, so the SDK's `transform_schema`
    moves them into the description as "{minLength: 200}" or "{maxItems: 3, minItems: 2}"; a
    model reads and keeps them,
    and so does this filler."""
    found = _DESCRIBED.findall(schema.get("description") or "")
    if not found:
        return schema
    extra = {key: float(value) if "." in value else int(value) for key, value in found}
    return {**schema, **{key: value for key, value in extra.items() if key not in schema}}


def fill_schema(schema: dict, body: dict) -> Any:
    """A valid instance of `schema`, reproducible for `body` and different for other bodies."""
    rng = random.Random(_seed(body))
    return _SchemaFiller(schema, rng, _user_lines(body)).fill(schema)


# --------------------------------------------------------------------------- server state


class _ApiError(Exception):
    """An error answer: raised anywhere in request handling, sent as the API's error body."""

    def __init__(self, status: int, message: str | None = None, *, type: str | None = None,
                 headers: dict[str, str] | None = None):
        default_type, default_message = ERRORS.get(status, ("api_error", "Error."))
        super().__init__(message or default_message)
        self.status = status
        self.type = type or default_type
        self.message = message or default_message
        self.headers = headers or {}


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _require_message_params(params: Any, *, needs_max_tokens: bool = True) -> None:
    if not isinstance(params, dict):
        raise _ApiError(400, "The request body must be a JSON object.")
    if not isinstance(params.get("model"), str) or not params["model"]:
        raise _ApiError(400, "model: Field required")
    if not isinstance(params.get("messages"), list) or not params["messages"]:
        raise _ApiError(400, "messages: at least one message is required")
    max_tokens = params.get("max_tokens")
    if needs_max_tokens and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise _ApiError(400, "max_tokens: Field required")


def _forced_tool(body: dict) -> dict | None:
    tools = body.get("tools") or []
    choice = body.get("tool_choice") or {}
    if choice.get("type") == "tool":
        for tool in tools:
            if tool.get("name") == choice.get("name"):
                return tool
        raise _ApiError(400, f"tool_choice names tool {choice.get('name')!r}, which is not in tools")
    if choice.get("type") == "any" and tools:
        return tools[0]
    return None


def _output_schema(body: dict) -> dict | None:
    """The JSON schema of a structured-outputs request (`output_config.format`), if any."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        return fmt["schema"]
    return None


def _truncate(tool_input: Any) -> Any:
    """What a tool call cut off by max_tokens leaves: the first half of its fields at most."""
    if not isinstance(tool_input, dict):
        return {}
    keys = list(tool_input)
    return {key: tool_input[key] for key in keys[: len(keys) // 2]}


@dataclass
class _Batch:
    id: str
    created_at: datetime
    outcomes: list[tuple[str, dict]]  # (custom_id, result), in submission order
    polls: int = 0
    ended_at: datetime | None = None
    cancel_initiated_at: datetime | None = None


class ClaudeServer:
    """The Messages API stand-in. Use as a context manager; it serves while inside it.

    Public attributes, all changeable while it serves:

    * ``base_url``: ``http://127.0.0.1:PORT`` (read only).
    * ``latency``: seconds slept before answering each request.
    * ``faults``: FIFO of scripted faults; each ``POST /v1/messages`` (plain or streamed)
      takes the first. ``{"status": S, "retry_after": N, "type": T, "message": M,
      "headers": {...}}`` answers with that error; ``{"kind": K}`` with K one of
      ``timeout`` (+ ``seconds``), ``reset``, ``midstream_overload``, ``max_tokens``,
      ``refusal``, ``invalid``, ``text`` (+ ``text``) changes how the request goes.
    * ``batch_result_faults``: custom_id -> errored | invalid | expired | canceled, taken
      by the next batch created with that custom_id (or with a custom_id that is the key
      followed by "-" and a tag, as the pipeline's are).
    * ``batch_faults``: FIFO taken by each batch create. ``{"status": S}`` refuses it (no
      batch); ``{"status": S, "after_create": true}`` makes the batch, then answers S;
      ``{"kind": "timeout", "seconds": N}`` makes the batch, then answers N seconds late;
      ``{"kind": "reset", "after_create": true}`` makes it and hangs up with no answer.
    * ``billed``: (model, usage, batch) of every message composed: what the API would bill.
    * ``batch_ids``: the id of every batch created, in order.
    * ``responder``: ``responder(body)`` returns the tool input (dict), the text (str), or
      None for the default. It runs on the server's threads (for batches, at creation).
    * ``requests``: log of every request: path (without query), method, headers (lower
      case keys) and body (parsed JSON or None).

    One lock guards the shared state and is never held while sleeping, so requests overlap.
    """

    def __init__(self, *, api_key: str = "test-key", latency: float = 0.0, min_cache_tokens: int = 1024,
                 batch_polls: int = 1, responder: Responder | None = None, port: int = 0,
                 verbose: bool = False):
        self.api_key = api_key
        self.latency = latency
        self.min_cache_tokens = min_cache_tokens
        self.batch_polls = batch_polls
        self.responder = responder
        self.verbose = verbose
        self.faults: list[dict] = []
        self.requests: list[dict] = []
        self.batch_result_faults: dict[str, str] = {}
        self.batch_faults: list[dict] = []
        self.billed: list[tuple[str, dict, bool]] = []
        self.batch_ids: list[str] = []
        self._port = port
        self._lock = threading.Lock()
        self._cache: set[str] = set()
        self._batches: dict[str, _Batch] = {}
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> ClaudeServer:
        self._httpd = _HTTPServer(("127.0.0.1", self._port), _Handler, self)
        # A short poll interval keeps stop() quick; serving threads are daemons.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
            name="claude-server", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.close_all_connections()
        self._httpd.server_close()
        self._httpd = None

    def __enter__(self) -> ClaudeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- inspection

    def count(self, path_prefix: str, method: str = "POST") -> int:
        """How many logged requests used `method` on a path starting with `path_prefix`.

        A prefix: "/v1/messages" also counts count_tokens and batch requests.
        """
        with self._lock:
            return sum(
                1 for entry in self.requests
                if entry["path"].startswith(path_prefix) and entry["method"] == method
            )

    # -- used by the handler

    def _log(self, entry: dict) -> None:
        with self._lock:
            self.requests.append(entry)

    def _pop_fault(self) -> dict | None:
        with self._lock:
            return self.faults.pop(0) if self.faults else None

    def _pop_batch_fault(self) -> dict | None:
        with self._lock:
            return self.batch_faults.pop(0) if self.batch_faults else None

    def _pop_result_fault(self, custom_id: str) -> str | None:
        with self._lock:
            if custom_id in self.batch_result_faults:
                return self.batch_result_faults.pop(custom_id)
            for key in list(self.batch_result_faults):
                if custom_id.startswith(key + "-"):
                    return self.batch_result_faults.pop(key)
            return None

    def _input_usage(self, body: dict) -> dict[str, int]:
        total, prefix, key = prompt_tokens(body)
        created = read = 0
        if key is not None and prefix >= self.min_cache_tokens:
            with self._lock:  # check-and-remember must be atomic, or two first calls both "create"
                if key in self._cache:
                    read = prefix
                else:
                    self._cache.add(key)
                    created = prefix
        return {
            "input_tokens": total - created - read,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }

    def _answer(self, body: dict) -> dict | str | None:
        if self.responder is None:
            return None
        answer = self.responder(body)
        if answer is not None and not isinstance(answer, (dict, str)):
            raise TypeError(f"responder returned {type(answer).__name__}; expected dict, str or None")
        return answer

    def _compose(self, body: dict, fault: dict | None, batch: bool = False) -> dict:
        """The assistant Message for `body`, shaped by a content fault if one is given."""
        kind = (fault or {}).get("kind")
        tool = _forced_tool(body)
        if kind == "refusal":
            content, stop = [{"type": "text", "text": REFUSAL_TEXT}], "refusal"
        elif kind == "text":
            content, stop = [{"type": "text", "text": str(fault.get("text", ""))}], "end_turn"
        else:
            answer = self._answer(body)
            if tool is not None and not isinstance(answer, str):
                tool_input = answer if isinstance(answer, dict) else fill_schema(tool.get("input_schema") or {}, body)
                stop = "tool_use"
                if kind == "invalid":
                    tool_input = {}
                elif kind == "max_tokens":
                    tool_input, stop = _truncate(tool_input), "max_tokens"
                content = [{"type": "tool_use", "id": _new_id("toolu_"), "name": tool["name"], "input": tool_input}]
            else:
                schema = _output_schema(body)
                if isinstance(answer, str):
                    text = answer
                elif isinstance(answer, dict):
                    text = json.dumps(answer, ensure_ascii=False)
                elif schema is not None:  # structured outputs: the JSON document is the text
                    text = json.dumps(fill_schema(schema, body), ensure_ascii=False)
                else:
                    text = _sentence(random.Random(_seed(body)), 6, 12)
                stop = "end_turn"
                if kind == "invalid":
                    text = "{}"
                elif kind == "max_tokens":
                    text, stop = text[: max(1, len(text) // 2)], "max_tokens"
                content = [{"type": "text", "text": text}]
        output = sum(
            count_text_tokens(block["text"] if block["type"] == "text" else canonical_json(block["input"]))
            for block in content
        )
        usage = {**self._input_usage(body), "output_tokens": max(1, output)}
        with self._lock:
            self.billed.append((str(body.get("model")), usage, bool(batch)))
        return {
            "id": _new_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }

    # -- batches

    def _create_batch(self, body: Any) -> dict:
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests:
            raise _ApiError(400, "requests: at least one request is required")
        custom_ids = set()
        for index, request in enumerate(requests):  # validate all before any fault is consumed
            custom_id = request.get("custom_id") if isinstance(request, dict) else None
            if not isinstance(custom_id, str) or not custom_id:
                raise _ApiError(400, f"requests.{index}.custom_id: Field required")
            if custom_id in custom_ids:
                raise _ApiError(400, f"requests.{index}.custom_id: {custom_id!r} is not unique")
            custom_ids.add(custom_id)
            try:
                _require_message_params(request.get("params"))
                _forced_tool(request["params"])
            except _ApiError as err:
                raise _ApiError(400, f"requests.{index}.params: {err.message}") from None

        outcomes = []
        for request in requests:
            custom_id = request["custom_id"]
            outcomes.append((custom_id, self._batch_result(request["params"], self._pop_result_fault(custom_id))))
        batch = _Batch(id=_new_id("msgbatch_"), created_at=datetime.now(UTC), outcomes=outcomes)
        with self._lock:
            self._batches[batch.id] = batch
            self.batch_ids.append(batch.id)
            return self._batch_json(batch)

    def _batch_result(self, params: dict, fault: str | None) -> dict:
        if fault is None:
            params = {key: value for key, value in params.items() if key != "stream"}
            return {"type": "succeeded", "message": self._compose(params, None, batch=True)}
        if fault in ("errored", "invalid"):
            error = (
                {"type": "overloaded_error", "message": "Overloaded"} if fault == "errored"
                else {"type": "invalid_request_error", "message": "messages: the request is invalid"}
            )
            return {"type": "errored", "error": {"type": "error", "error": error}}
        if fault in ("expired", "canceled"):
            return {"type": fault}
        raise _ApiError(500, f"batch_result_faults: unknown outcome {fault!r}; use one of {BATCH_RESULT_FAULTS}")

    def _batch(self, batch_id: str) -> _Batch:
        batch = self._batches.get(batch_id)
        if batch is None:
            raise _ApiError(404, f"No message batch with id {batch_id!r}.")
        return batch

    def _end(self, batch: _Batch) -> None:
        if batch.cancel_initiated_at is not None:
            batch.outcomes = [(custom_id, {"type": "canceled"}) for custom_id, _ in batch.outcomes]
        batch.ended_at = datetime.now(UTC)

    def _retrieve_batch(self, batch_id: str) -> dict:
        with self._lock:
            batch = self._batch(batch_id)
            if batch.ended_at is None:
                batch.polls += 1
                if batch.polls > self.batch_polls or batch.cancel_initiated_at is not None:
                    self._end(batch)
            return self._batch_json(batch)

    def _cancel_batch(self, batch_id: str) -> dict:
        with self._lock:
            batch = self._batch(batch_id)
            if batch.ended_at is None and batch.cancel_initiated_at is None:
                batch.cancel_initiated_at = datetime.now(UTC)
            return self._batch_json(batch)

    def _list_batches(self, query: dict[str, str]) -> dict:
        """A page of batches, newest first: `after_id` pages on to older ones, `before_id`
        back to newer ones, as the API's cursor pagination does."""
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise _ApiError(400, "limit: Input should be a valid integer") from None
        if not 1 <= limit <= 1000:
            raise _ApiError(400, "limit: Input should be between 1 and 1000")
        with self._lock:
            ordered = list(reversed(self._batches.values()))
            ids = [batch.id for batch in ordered]
            for key in ("after_id", "before_id"):
                if key in query and query[key] not in ids:
                    raise _ApiError(404, f"{key}: no message batch with id {query[key]!r}")
            if "after_id" in query:
                start = ids.index(query["after_id"]) + 1
                window = ordered[start:start + limit]
                more = start + limit < len(ordered)
            elif "before_id" in query:
                end = ids.index(query["before_id"])
                window = ordered[max(0, end - limit):end]
                more = end - limit > 0
            else:
                window, more = ordered[:limit], len(ordered) > limit
            data = [self._batch_json(batch) for batch in window]
        return {
            "data": data,
            "has_more": more,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }

    def _batch_results(self, batch_id: str) -> bytes:
        with self._lock:
            batch = self._batch(batch_id)
            if batch.ended_at is None:
                raise _ApiError(400, f"Message batch {batch_id!r} is still in progress; its results are not ready.")
            # Reversed: the API promises no order, so clients must match on custom_id.
            lines = [
                json.dumps({"custom_id": custom_id, "result": result})
                for custom_id, result in reversed(batch.outcomes)
            ]
        return ("\n".join(lines) + "\n").encode()

    def _batch_json(self, batch: _Batch) -> dict:
        ended = batch.ended_at is not None
        counts = {"processing": 0 if ended else len(batch.outcomes),
                  "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for _, result in batch.outcomes:
                counts[result["type"]] += 1
        status = "ended" if ended else "canceling" if batch.cancel_initiated_at else "in_progress"
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts,
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + timedelta(hours=24)),
            "ended_at": _iso(batch.ended_at),
            "cancel_initiated_at": _iso(batch.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{self.base_url}/v1/messages/batches/{batch.id}/results" if ended else None,
        }


# --------------------------------------------------------------------------- HTTP


def _fault_error(fault: dict) -> _ApiError:
    headers = {str(key): str(value) for key, value in (fault.get("headers") or {}).items()}
    if fault.get("retry_after") is not None:
        headers["retry-after"] = str(fault["retry_after"])
    return _ApiError(int(fault["status"]), fault.get("message"), type=fault.get("type"), headers=headers)


def _chunks(text: str, parts: int = 5) -> list[str]:
    """`text` in about `parts` pieces, cut anywhere (mid-word, mid-string) as the API does."""
    if not text:
        return []
    size = max(1, math.ceil(len(text) / parts))
    return [text[start:start + size] for start in range(0, len(text), size)]


def _stream_events(message: dict, *, overload_midstream: bool = False) -> list[tuple[str, dict]]:
    """The server-sent events that deliver `message`, in the API's order."""
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None,
             "usage": {**message["usage"], "output_tokens": 1}}
    events = [("message_start", {"type": "message_start", "message": start}), ("ping", {"type": "ping"})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            opening = {**block, "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": part}
                      for part in _chunks(json.dumps(block["input"], ensure_ascii=False))]
        else:
            opening = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _chunks(block["text"])]
        events.append(("content_block_start",
                       {"type": "content_block_start", "index": index, "content_block": opening}))
        if overload_midstream:
            # After the 200 and the first events: the SDK can only raise this while iterating.
            events.append(("error", {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
            return events
        for delta in deltas:
            events.append(("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    events.append(("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
        "usage": {"output_tokens": message["usage"]["output_tokens"]},
    }))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connection attempts when a client opens many at once,
    # and a dropped SYN costs a one-second retransmit: fatal to a concurrency benchmark.
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type, owner: ClaudeServer):
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def close_all_connections(self) -> None:
        """Wake the threads that wait on idle keep-alive connections, so none outlives the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (timeouts, resets) is expected here; anything else is a bug.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with keep-alive, as the API speaks: the SDK's pooled connections are reused.
    protocol_version = "HTTP/1.1"
    server_version = "claude-server/1"
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            sys.stderr.write(f"claude-server: {format % args}\n")

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- request flow

    def _dispatch(self) -> None:
        owner = self.server.owner
        self.request_id = _new_id("req_")
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        self.query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        try:
            body = self._read_body()
        except OSError:
            self.close_connection = True
            return
        owner._log({
            "path": path,
            "method": self.command,
            "headers": {key.lower(): value for key, value in self.headers.items()},
            "body": body,
        })
        try:
            if not self._authenticated(owner.api_key):
                raise _ApiError(401, "invalid x-api-key")
            if owner.latency > 0:
                time.sleep(owner.latency)
            self._route(path, body)
        except _ApiError as err:
            self._send_error(err)
        except OSError:
            self.close_connection = True  # the client hung up; nobody is left to answer
        except Exception as err:  # a bug here, or in a responder: say so instead of hanging up
            traceback.print_exc()
            self._send_error(_ApiError(500, f"claude_server failed: {err!r}"))

    def _authenticated(self, api_key: str) -> bool:
        # The API takes the key as `x-api-key`; SDK 2.14 sends `api_key=` as
        # `Authorization: Bearer <key>` instead, so both must be accepted.
        bearer = self.headers.get("authorization") or ""
        return self.headers.get("x-api-key") == api_key or bearer == f"Bearer {api_key}"

    def _read_body(self) -> Any:
        # Read all of it even when it is not JSON, so a keep-alive connection stays in step.
        declared = self.headers.get("content-length") or "0"
        length = int(declared) if declared.isdigit() else 0
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None  # answered as a request without a body: 400 where one is needed

    def _route(self, path: str, body: Any) -> None:
        owner, method = self.server.owner, self.command
        batches = "/v1/messages/batches"
        if path == "/v1/messages" and method == "POST":
            self._messages(body)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            _require_message_params(body, needs_max_tokens=False)
            self._send_json(200, {"input_tokens": prompt_tokens(body)[0]})
        elif path == batches and method == "POST":
            self._create_batch(body)
        elif path == batches and method == "GET":
            self._send_json(200, owner._list_batches(self.query))
        elif path.startswith(batches + "/"):
            batch_id, _, action = path[len(batches) + 1:].partition("/")
            if action == "" and method == "GET":
                self._send_json(200, owner._retrieve_batch(batch_id))
            elif action == "results" and method == "GET":
                self._send_bytes(200, owner._batch_results(batch_id), "application/x-jsonl")
            elif action == "cancel" and method == "POST":
                self._send_json(200, owner._cancel_batch(batch_id))
            else:
                raise _ApiError(404, f"Not found: {method} {path}")
        else:
            raise _ApiError(404, f"Not found: {method} {path}")

    def _create_batch(self, body: Any) -> None:
        owner = self.server.owner
        fault = owner._pop_batch_fault() or {}
        if "status" in fault and not fault.get("after_create"):
            raise _fault_error(fault)
        created = owner._create_batch(body)
        if "status" in fault:  # made, and then the answer is an error: the client cannot know
            raise _fault_error(fault)
        if fault.get("kind") == "timeout":
            time.sleep(float(fault.get("seconds", 1)))
        elif fault.get("kind") == "reset":
            self._reset()
            return
        self._send_json(200, created)

    def _messages(self, body: Any) -> None:
        owner = self.server.owner
        fault = owner._pop_fault()  # every request takes its fault, even one that then fails
        _require_message_params(body)
        stream = bool(body.get("stream"))
        kind = (fault or {}).get("kind")
        if fault is not None and "status" in fault:
            raise _fault_error(fault)
        if kind == "timeout":
            time.sleep(float(fault.get("seconds", 1)))
        elif kind == "reset":
            self._reset()
            return
        elif kind == "midstream_overload" and not stream:
            raise _ApiError(529)
        message = owner._compose(body, fault)
        if stream:
            self._send_stream(_stream_events(message, overload_midstream=kind == "midstream_overload"))
        else:
            self._send_json(200, message)

    # -- answers

    def _start(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status, REASONS.get(status))
        self.send_header("request-id", self.request_id)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._start(status, {"content-type": content_type, "content-length": str(len(data)), **(headers or {})})
        self.wfile.write(data)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_error(self, err: _ApiError) -> None:
        payload = {"type": "error", "error": {"type": err.type, "message": err.message}, "request_id": self.request_id}
        try:
            self._send_json(err.status, payload, err.headers)
        except OSError:
            self.close_connection = True

    def _send_stream(self, events: list[tuple[str, dict]]) -> None:
        # Chunked, one chunk per event, so the client sees each event as it is written.
        self._start(200, {"content-type": "text/event-stream", "cache-control": "no-cache",
                          "transfer-encoding": "chunked"})
        for name, data in events:
            chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
            self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _reset(self) -> None:
        """Drop the connection with a TCP RST and no answer at all."""
        # Linger 0 makes close() send RST instead of FIN. The socket really closes when the
        # handler's file objects are released at the end of this request.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a stand-in for the Anthropic Messages API on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port (default 8765)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--api-key", default="test-key")
    parser.add_argument("--min-cache-tokens", type=int, default=1024)
    parser.add_argument("--batch-polls", type=int, default=1)
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    server = ClaudeServer(api_key=args.api_key, latency=args.latency, min_cache_tokens=args.min_cache_tokens,
                          batch_polls=args.batch_polls, port=args.port, verbose=not args.quiet)
    with server:
        print(f"Claude API stand-in listening on {server.base_url}", flush=True)
        print(f"  ANTHROPIC_BASE_URL={server.base_url} ANTHROPIC_API_KEY={args.api_key}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
