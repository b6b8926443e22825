"""The API output format of a task's schema as its prompt version hashes it, remembered on disk.

A prompt version (`TeachingTask.version`) hashes the output format the API is sent, which the
Claude SDK's `transform_schema` derives from the pydantic schema. Importing the SDK takes a
second or more, and the stages that only compare versions (`workshop data gate`, prepare) paid
it on every run for a result that changes only with the schema or the SDK. So the format is
kept in the user folder (`cache/output_formats.json`), keyed by the schema and filed under
the installed SDK's version: an upgrade or a schema edit computes it afresh, and a missing,
unreadable or unwritable file only costs the import. Requests themselves always build their
format from the SDK (`TeachingTask.output_format`); only the hash reads it from here.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path
from typing import Any

from poetry_workshop import locations

SDK = "anthropic"


def cache_file() -> Path:
    return locations.user_dir() / "cache" / "output_formats.json"


def transformed(schema: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "json_schema", "schema": transform_schema(schema)}`, from the cache when this
    SDK version has already transformed this schema."""
    try:
        sdk = metadata.version(SDK)
    except metadata.PackageNotFoundError:
        return from_sdk(schema)  # fails as the import would
    key = hashlib.sha256(json.dumps(schema, sort_keys=True).encode("utf-8")).hexdigest()[:24]
    path = cache_file()
    known = _read(path, sdk)
    if key in known:
        return known[key]
    fmt = from_sdk(schema)
    known[key] = fmt
    try:
        from poetry_workshop.files import write_atomic

        # Entries of other SDK versions are dropped: they would never be read again.
        write_atomic(path, json.dumps({"sdk": sdk, "formats": known}, sort_keys=True))
    except OSError:
        pass  # a read-only user folder: every run transforms afresh, as before the cache
    return fmt


def from_sdk(schema: dict[str, Any]) -> dict[str, Any]:
    """The API's JSON-schema output format, built by the SDK (whose import costs a second or
    more): the SDK's transform moves the constraints the API does not enforce (lengths,
    minimums) into the descriptions."""
    from anthropic import transform_schema

    return {"type": "json_schema", "schema": transform_schema(schema)}


def _read(path: Path, sdk: str) -> dict[str, Any]:
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("sdk") != sdk or not isinstance(stored.get("formats"), dict):
        return {}
    return stored["formats"]
