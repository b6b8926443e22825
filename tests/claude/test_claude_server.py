"""The Messages API stand-in (tests/claude_server.py), driven by the real `anthropic` SDK.

Everything here goes over real HTTP on 127.0.0.1, so these tests pin down what a client of
the pipeline will see from the SDK: the answer shapes, the exception classes, the streaming
accumulator's result, the batch flow and the token accounting.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import anthropic
import pytest

from tests.fakes.claude_server import ClaudeServer, count_text_tokens

API_KEY = "test-key"
MODEL = "claude-sonnet-4-6"  # not on the SDK's deprecated list, which warns on every call
SERVER_SCRIPT = Path(__file__).resolve().parent.parent / "fakes" / "claude_server.py"

POEM = "Fog\nThe fog comes\non little cat feet.\n\nIt sits looking\nover harbor and city"
USER_TEXT = f"Teach me about this poem:\n{POEM}"
USER_LINES = {line.strip() for line in USER_TEXT.splitlines() if line.strip()}

# Shaped like a pydantic model's schema: $defs and $ref, a nullable anyOf, enum, const, bounds.
LESSON_TOOL = {
    "name": "record_lesson",
    "description": "Record a lesson about a poem.",
    "input_schema": {
        "type": "object",
        "$defs": {
            "Observation": {
                "type": "object",
                "properties": {
                    "quote": {"type": "string", "maxLength": 120},
                    "note": {"type": "string", "minLength": 20, "maxLength": 200},
                },
                "required": ["quote", "note"],
                "additionalProperties": False,
            },
        },
        "properties": {
            "title": {"type": "string", "minLength": 3, "maxLength": 40},
            "form": {"enum": ["sonnet", "haiku", "free verse"]},
            "stanzas": {"type": "integer", "minimum": 1, "maximum": 4},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "rhymed": {"type": "boolean"},
            "observations": {"type": "array", "items": {"$ref": "#/$defs/Observation"}, "minItems": 2, "maxItems": 3},
            "mood": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 30}]},
            "kind": {"const": "lesson"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "maxItems": 5},
        },
        "required": ["title", "form", "stanzas", "observations", "kind"],
        "additionalProperties": False,
    },
}
LESSON_SCHEMA = LESSON_TOOL["input_schema"]

# Comfortably above the 1024-token cache minimum (a token is four characters here).
LONG_SYSTEM = "You are a patient poetry teacher who quotes the poem line by line. " * 70


def lesson_request(text: str = USER_TEXT, **overrides) -> dict:
    return {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
        "tools": [LESSON_TOOL],
        "tool_choice": {"type": "tool", "name": "record_lesson"},
        **overrides,
    }


def text_request(text: str = "Say something about the sea.", **overrides) -> dict:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **overrides}


def cached_system(text: str = LONG_SYSTEM) -> list[dict]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


def schema_errors(value, schema, root=None, where="$") -> list[str]:
    """An independent check of the server's filler, for the JSON Schema keywords used here."""
    root = root or schema
    if "$ref" in schema:
        target = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            target = target[part]
        return schema_errors(value, target, root, where)
    if "const" in schema:
        return [] if value == schema["const"] else [f"{where}: {value!r} is not {schema['const']!r}"]
    if "enum" in schema:
        return [] if value in schema["enum"] else [f"{where}: {value!r} not in {schema['enum']}"]
    if "anyOf" in schema:
        if any(not schema_errors(value, option, root, where) for option in schema["anyOf"]):
            return []
        return [f"{where}: {value!r} matches no anyOf option"]
    kind = schema.get("type")
    checks = {
        "object": lambda: isinstance(value, dict),
        "array": lambda: isinstance(value, list),
        "string": lambda: isinstance(value, str),
        "integer": lambda: isinstance(value, int) and not isinstance(value, bool),
        "number": lambda: isinstance(value, (int, float)) and not isinstance(value, bool),
        "boolean": lambda: isinstance(value, bool),
        "null": lambda: value is None,
    }
    if kind is not None and not checks[kind]():
        return [f"{where}: {value!r} is not of type {kind}"]
    errors = []
    if kind == "object":
        properties = schema.get("properties", {})
        errors += [f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{where}: unexpected {key!r}" for key in value if key not in properties]
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], root, f"{where}.{key}")
    elif kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            errors.append(f"{where}: {len(value)} items")
        for index, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), root, f"{where}[{index}]")
    elif kind == "string":
        if not schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)):
            errors.append(f"{where}: length {len(value)} out of bounds")
    elif kind in ("integer", "number"):
        if not schema.get("minimum", value) <= value <= schema.get("maximum", value):
            errors.append(f"{where}: {value} out of bounds")
    return errors


@pytest.fixture
def server():
    with ClaudeServer(api_key=API_KEY) as running:
        yield running


@pytest.fixture
async def client(server):
    async_client = anthropic.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    yield async_client
    await async_client.close()


@pytest.fixture
def sync_client(server):
    with anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0) as sync:
        yield sync


# --------------------------------------------------------------------------- answers


async def test_forced_tool_answers_with_a_schema_valid_input(client):
    message = await client.messages.create(**lesson_request())

    assert message.id.startswith("msg_") and message._request_id.startswith("req_")
    assert message.model == MODEL and message.role == "assistant"
    assert message.stop_reason == "tool_use" and message.stop_sequence is None
    [block] = message.content
    assert block.type == "tool_use" and block.name == "record_lesson" and block.id.startswith("toolu_")
    assert schema_errors(block.input, LESSON_SCHEMA) == []
    # Fields named like "quote" quote a line of the user's message.
    assert {observation["quote"] for observation in block.input["observations"]} <= USER_LINES
    canonical = json.dumps(block.input, sort_keys=True, separators=(",", ":"))
    assert message.usage.output_tokens == count_text_tokens(canonical)


async def test_the_filled_input_is_reproducible_for_a_request_and_varies_between_requests(client):
    first = await client.messages.create(**lesson_request())
    again = await client.messages.create(**lesson_request())
    other = await client.messages.create(**lesson_request(USER_TEXT + "\nand then moves on."))

    assert first.content[0].input == again.content[0].input
    assert first.content[0].input != other.content[0].input
    assert schema_errors(other.content[0].input, LESSON_SCHEMA) == []


async def test_without_a_forced_tool_the_answer_is_text(client):
    message = await client.messages.create(**text_request())

    [block] = message.content
    assert block.type == "text" and block.text
    assert message.stop_reason == "end_turn"


async def test_a_responder_decides_the_tool_input_or_the_text(server, client):
    seen = []

    def responder(body):
        seen.append(body)
        if body.get("tools"):
            return {"title": "Fog", "form": "free verse", "stanzas": 2, "observations": [], "kind": "lesson"}
        return "The sea is wide." if "sea" in body["messages"][0]["content"] else None

    server.responder = responder
    tool_answer = await client.messages.create(**lesson_request())
    text_answer = await client.messages.create(**text_request())
    default_answer = await client.messages.create(**text_request("Hello"))

    assert tool_answer.content[0].input["title"] == "Fog"
    assert text_answer.content[0].text == "The sea is wide."
    assert default_answer.content[0].text  # None: the server's default answer
    assert [body["model"] for body in seen] == [MODEL] * 3


async def test_a_stream_accumulates_to_the_same_message(client):
    plain = await client.messages.create(**lesson_request())

    async with client.messages.stream(**lesson_request()) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()

    assert final.content[0].input == plain.content[0].input
    assert final.stop_reason == "tool_use"
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.cache_creation_input_tokens == 0 and final.usage.cache_read_input_tokens == 0
    # The tool's JSON arrives in several partial pieces, as from the API.
    assert kinds.count("input_json") >= 3
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert stream.request_id.startswith("req_")


async def test_a_text_stream_yields_pieces_of_the_same_text(client):
    plain = await client.messages.create(**text_request())

    async with client.messages.stream(**text_request()) as stream:
        pieces = [piece async for piece in stream.text_stream]
        text = await stream.get_final_text()

    assert len(pieces) > 1 and "".join(pieces) == text == plain.content[0].text


def test_the_sync_client_streams_too(sync_client):
    with sync_client.messages.stream(**lesson_request()) as stream:
        final = stream.get_final_message()

    assert schema_errors(final.content[0].input, LESSON_SCHEMA) == []


# --------------------------------------------------------------------------- tokens and caching


async def test_a_marked_system_prompt_is_written_to_the_cache_then_read(client):
    request = lesson_request(system=cached_system())
    total = (await client.messages.count_tokens(
        model=MODEL, system=request["system"], messages=request["messages"], tools=request["tools"],
    )).input_tokens

    first = await client.messages.create(**request)
    second = await client.messages.create(**request)
    async with client.messages.stream(**request) as stream:
        streamed = await stream.get_final_message()

    prefix = first.usage.cache_creation_input_tokens
    assert prefix >= 1024 and first.usage.cache_read_input_tokens == 0
    assert first.usage.input_tokens == total - prefix > 0  # what follows the breakpoint
    assert second.usage.cache_read_input_tokens == prefix and second.usage.cache_creation_input_tokens == 0
    assert second.usage.input_tokens == first.usage.input_tokens
    assert streamed.usage.cache_read_input_tokens == prefix  # carried by message_start
    assert streamed.usage.cache_creation_input_tokens == 0


async def test_no_caching_below_the_minimum_or_without_a_breakpoint(client):
    short = await client.messages.create(**text_request(system=cached_system("Be brief.")))
    unmarked = await client.messages.create(**text_request(system=LONG_SYSTEM))
    unmarked_again = await client.messages.create(**text_request(system=LONG_SYSTEM))

    for message in (short, unmarked, unmarked_again):
        assert message.usage.cache_creation_input_tokens == 0
        assert message.usage.cache_read_input_tokens == 0
    assert unmarked.usage.input_tokens > 1024


async def test_the_cache_minimum_and_message_breakpoints_are_honoured():
    with ClaudeServer(api_key=API_KEY, min_cache_tokens=10) as small:
        async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=small.base_url, max_retries=0) as client:
            content = [
                {"type": "text", "text": POEM * 3, "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": "Which line is the best?"},
            ]
            request = text_request(messages=[{"role": "user", "content": content}])
            first = await client.messages.create(**request)
            second = await client.messages.create(**request)

    assert first.usage.cache_creation_input_tokens > 10
    assert second.usage.cache_read_input_tokens == first.usage.cache_creation_input_tokens
    assert second.usage.input_tokens > 0  # the block after the breakpoint is never cached


async def test_count_tokens_matches_the_usage_and_leaves_faults_alone(server, client):
    request = lesson_request(system="Teach gently.")
    server.faults.append({"status": 500})

    counted = await client.messages.count_tokens(
        model=MODEL, system=request["system"], messages=request["messages"], tools=request["tools"],
    )

    assert len(server.faults) == 1
    server.faults.clear()
    message = await client.messages.create(**request)
    assert counted.input_tokens == message.usage.input_tokens > 0


# --------------------------------------------------------------------------- faults


@pytest.mark.parametrize(
    ("status", "error_class", "error_type"),
    [
        (400, anthropic.BadRequestError, "invalid_request_error"),
        (401, anthropic.AuthenticationError, "authentication_error"),
        (403, anthropic.PermissionDeniedError, "permission_error"),
        (429, anthropic.RateLimitError, "rate_limit_error"),
        (500, anthropic.InternalServerError, "api_error"),
        (503, anthropic.ServiceUnavailableError, "api_error"),
        (529, anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_status_faults_raise_the_sdk_class_for_the_status(server, client, status, error_class, error_type):
    server.faults.append({"status": status})

    with pytest.raises(error_class) as caught:
        await client.messages.create(**lesson_request())

    error = caught.value
    assert error.status_code == status and error.type == error_type
    assert error.request_id.startswith("req_") and error.body["request_id"] == error.request_id
    assert server.faults == []
    if status >= 500:
        assert isinstance(error, anthropic.InternalServerError)  # so 529 is both


async def test_a_rate_limit_carries_retry_after(server, client):
    server.faults.append({"status": 429, "retry_after": 1})

    with pytest.raises(anthropic.RateLimitError) as caught:
        await client.messages.create(**lesson_request())

    assert caught.value.response.headers["retry-after"] == "1"


async def test_faults_apply_in_order_and_the_sdk_retries_through_them(server):
    server.faults += [{"status": 429, "retry_after": 0.01}, {"status": 529, "headers": {"retry-after-ms": "10"}}]

    async with anthropic.AsyncAnthropic(api_key=API_KEY, base_url=server.base_url, max_retries=2) as client:
        message = await client.messages.create(**lesson_request())

    assert message.stop_reason == "tool_use"
    assert [entry["headers"]["x-stainless-retry-count"] for entry in server.requests] == ["0", "1", "2"]


async def test_a_wrong_key_is_refused_without_taking_a_fault(server):
    server.faults.append({"kind": "refusal"})

    async with anthropic.AsyncAnthropic(api_key="wrong", base_url=server.base_url, max_retries=0) as client:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await client.messages.create(**lesson_request())

    assert caught.value.api_message == "invalid x-api-key"
    assert server.faults == [{"kind": "refusal"}]


def test_the_key_is_accepted_as_x_api_key(server):
    request = urllib.request.Request(
        server.base_url + "/v1/messages/count_tokens",
        data=json.dumps(text_request()).encode(),
        headers={"x-api-key": API_KEY, "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response)["input_tokens"] > 0
        assert response.headers["request-id"].startswith("req_")


async def test_a_slow_answer_times_the_client_out(server, client):
    server.faults.append({"kind": "timeout", "seconds": 1})
    started = time.monotonic()

    with pytest.raises(anthropic.APITimeoutError):
        await client.with_options(timeout=0.2).messages.create(**lesson_request())

    assert time.monotonic() - started < 0.9


async def test_a_reset_connection_is_a_connection_error_and_the_client_recovers(server, client):
    server.faults.append({"kind": "reset"})

    with pytest.raises(anthropic.APIConnectionError) as caught:
        await client.messages.create(**lesson_request())

    assert not isinstance(caught.value, anthropic.APITimeoutError)
    assert (await client.messages.create(**lesson_request())).stop_reason == "tool_use"


async def test_an_overload_in_the_middle_of_a_stream_is_a_status_error_with_status_200(server, client):
    server.faults.append({"kind": "midstream_overload"})

    async with client.messages.stream(**lesson_request()) as stream:
        with pytest.raises(anthropic.APIStatusError) as caught:
            await stream.get_final_message()

    error = caught.value
    assert error.status_code == 200 and error.type == "overloaded_error"
    assert not isinstance(error, anthropic.InternalServerError)
    assert error.request_id.startswith("req_")


async def test_an_overload_fault_on_a_plain_request_is_a_529(server, client):
    server.faults.append({"kind": "midstream_overload"})

    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(**lesson_request())


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
async def test_content_faults_shape_the_answer(server, client, stream):
    async def ask():
        if not stream:
            return await client.messages.create(**lesson_request())
        async with client.messages.stream(**lesson_request()) as running:
            return await running.get_final_message()

    server.faults += [
        {"kind": "max_tokens"}, {"kind": "refusal"}, {"kind": "invalid"}, {"kind": "text", "text": "Just words."},
    ]
    truncated, refused, invalid, texted = [await ask() for _ in range(4)]

    assert truncated.stop_reason == "max_tokens" and truncated.content[0].type == "tool_use"
    assert any("missing" in error for error in schema_errors(truncated.content[0].input, LESSON_SCHEMA))
    assert refused.stop_reason == "refusal" and refused.content[0].text == "I can't help with that."
    assert invalid.stop_reason == "tool_use" and invalid.content[0].input == {}
    assert texted.stop_reason == "end_turn" and texted.content[0].text == "Just words."
    assert (await ask()).stop_reason == "tool_use"  # the faults are used up


# --------------------------------------------------------------------------- batches


def test_a_batch_runs_ends_and_reports_each_request_by_custom_id(server, sync_client):
    server.batch_result_faults = {"b": "errored", "c": "expired", "d": "invalid", "e": "canceled"}
    requests = [
        {"custom_id": custom_id, "params": lesson_request(f"{USER_TEXT}\n{custom_id}")} for custom_id in "abcde"
    ]

    created = sync_client.messages.batches.create(requests=requests)
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress" and created.request_counts.processing == 5
    assert created.results_url is None and created.ended_at is None
    assert created.expires_at - created.created_at == timedelta(hours=24)
    assert server.batch_result_faults == {}  # each applies once

    assert sync_client.messages.batches.retrieve(created.id).processing_status == "in_progress"
    ended = sync_client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.ended_at is not None
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.expired, counts.canceled) == (0, 1, 2, 1, 1)
    assert ended.results_url == f"{server.base_url}/v1/messages/batches/{created.id}/results"

    results = list(sync_client.messages.batches.results(created.id))
    assert [result.custom_id for result in results] != list("abcde")  # not in submission order
    by_id = {result.custom_id: result.result for result in results}
    assert sorted(by_id) == list("abcde")
    assert by_id["a"].type == "succeeded"
    assert schema_errors(by_id["a"].message.content[0].input, LESSON_SCHEMA) == []
    direct = sync_client.messages.create(**requests[0]["params"])
    assert by_id["a"].message.content[0].input == direct.content[0].input
    assert by_id["b"].type == "errored" and by_id["b"].error.error.type == "overloaded_error"
    assert by_id["d"].type == "errored" and by_id["d"].error.error.type == "invalid_request_error"
    assert by_id["c"].type == "expired" and by_id["e"].type == "canceled"

    again = sync_client.messages.batches.create(requests=requests[:2])
    sync_client.messages.batches.retrieve(again.id)
    assert [result.result.type for result in sync_client.messages.batches.results(again.id)] == ["succeeded"] * 2


async def test_batch_requests_share_the_prompt_cache(client):
    requests = [
        {"custom_id": str(index), "params": lesson_request(f"{USER_TEXT}\n{index}", system=cached_system())}
        for index in range(2)
    ]
    created = await client.messages.batches.create(requests=requests)
    await client.messages.batches.retrieve(created.id)

    by_id = {result.custom_id: result.result.message.usage
             async for result in await client.messages.batches.results(created.id)}
    assert by_id["0"].cache_creation_input_tokens >= 1024
    assert by_id["1"].cache_read_input_tokens == by_id["0"].cache_creation_input_tokens


def test_a_batch_can_be_canceled_and_listed(sync_client):
    requests = [{"custom_id": custom_id, "params": text_request()} for custom_id in ("x", "y")]
    created = sync_client.messages.batches.create(requests=requests)

    canceling = sync_client.messages.batches.cancel(created.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    ended = sync_client.messages.batches.retrieve(created.id)
    assert ended.processing_status == "ended" and ended.request_counts.canceled == 2
    assert created.id in [batch.id for batch in sync_client.messages.batches.list()]


def test_with_no_polls_a_batch_ends_at_the_first_retrieval():
    with ClaudeServer(api_key=API_KEY, batch_polls=0) as server:
        with anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0) as client:
            created = client.messages.batches.create(requests=[{"custom_id": "only", "params": text_request()}])
            assert client.messages.batches.retrieve(created.id).processing_status == "ended"


def test_unknown_batches_and_paths_are_not_found(sync_client):
    with pytest.raises(anthropic.NotFoundError):
        sync_client.messages.batches.retrieve("msgbatch_missing")
    with pytest.raises(anthropic.NotFoundError) as caught:
        sync_client.get("/v1/nowhere", cast_to=object)
    assert caught.value.request_id.startswith("req_")


# --------------------------------------------------------------------------- the server itself


async def test_concurrent_requests_overlap(server, client):
    server.latency = 0.2
    started = time.monotonic()

    answers = await asyncio.gather(*(client.messages.create(**lesson_request()) for _ in range(8)))

    assert time.monotonic() - started < 1.2  # one after another would take 1.6 s
    assert all(answer.stop_reason == "tool_use" for answer in answers)


async def test_every_request_is_logged(server, client):
    await client.messages.create(**lesson_request())
    await client.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    batch = await client.messages.batches.create(requests=[{"custom_id": "1", "params": text_request()}])
    await client.messages.batches.retrieve(batch.id)

    first = server.requests[0]
    assert (first["path"], first["method"]) == ("/v1/messages", "POST")
    assert first["body"]["tool_choice"] == {"type": "tool", "name": "record_lesson"}
    assert first["headers"]["authorization"] == f"Bearer {API_KEY}"
    assert all(key == key.lower() for key in first["headers"])
    assert server.count("/v1/messages") == 3  # a prefix: count_tokens and the batch too
    assert server.count("/v1/messages/count_tokens") == 1
    assert server.count("/v1/messages/batches", "GET") == 1


def test_the_command_line_serves_until_stopped():
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), "--port", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("Claude API stand-in listening on http://127.0.0.1:"), process.stderr.read()
        base_url = line.split()[-1]
        with anthropic.Anthropic(api_key=API_KEY, base_url=base_url, max_retries=0) as client:
            assert client.messages.create(**lesson_request()).stop_reason == "tool_use"
    finally:
        process.terminate()
        process.wait(timeout=5)


def test_the_sdk_finds_the_server_through_its_environment_variables(server, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", API_KEY)
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)

    with anthropic.Anthropic(max_retries=0) as client:
        assert client.messages.create(**text_request()).stop_reason == "end_turn"
