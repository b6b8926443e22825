"""One structured call to Claude, with the retry policy and the verdict on what came back.

The SDK's own retries are turned off (`max_retries=0`) so that every retryable fault goes
through one policy here, including an overload that arrives mid-stream (a 200 response
whose stream carries an error event, which the SDK does not retry), and so the run knows
how many attempts each record took. 401, 402 (`billing_error`) and 403 stop the whole run at
once, with one line and no retry: every later call would fail the same way, and retrying a
billing error only asks again to be paid. Other 400-class errors are the request's fault
and are not retried.

The API key is read by the SDK from `ANTHROPIC_API_KEY` (after a `.env` file, if any, is
loaded) and never passes through this module's messages, records or logs.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anthropic
from pydantic import BaseModel, ValidationError

from poetry_workshop import locations
from poetry_workshop.config.schema import ClaudeSettings
from poetry_workshop.errors import ConfigError, WorkshopError
from poetry_workshop.pipeline.claude.ledger import Usage

T = TypeVar("T")


class ClaudeAccessError(WorkshopError):
    """The API refused the credentials, the account's billing or the permission: nothing else
    in the run can succeed, so it stops (what finished is kept)."""


# Statuses and error types after which no call of the run can succeed.
STOP_STATUSES = (401, 402, 403)
STOP_TYPES = ("authentication_error", "billing_error", "permission_error")


def load_dotenv_files() -> list[Path]:
    """Read `.env` in the current folder and the project folder, without overriding the
    environment (the seed's set-up keeps ANTHROPIC_API_KEY there)."""
    from dotenv import load_dotenv

    loaded = []
    for folder in dict.fromkeys([Path.cwd(), locations.project_root()]):
        path = folder / ".env"
        if path.is_file():
            load_dotenv(path, override=False)
            loaded.append(path)
    return loaded


def make_client(settings: ClaudeSettings) -> anthropic.AsyncAnthropic:
    load_dotenv_files()
    if not (os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_AUTH_TOKEN")):
        raise ConfigError(
            "ANTHROPIC_API_KEY is not set: put it in the environment or in a .env file in the "
            "project folder (ANTHROPIC_API_KEY=...), then run again"
        )
    # base_url comes from ANTHROPIC_BASE_URL through the SDK itself, as users expect.
    return anthropic.AsyncAnthropic(max_retries=0, timeout=settings.timeout_s)


@dataclass
class CallResult:
    outcome: str  # "accepted", "rejected" or "failed"
    output: dict[str, Any] | None = None
    usage: Usage = field(default_factory=Usage)
    request_id: str | None = None
    reason: str | None = None
    attempts: int = 1


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_s: float
    max_s: float

    @classmethod
    def from_settings(cls, s: ClaudeSettings) -> RetryPolicy:
        return cls(s.max_retries, s.retry_base_s, s.retry_max_s)

    def delay(self, attempt: int, error: Exception) -> float:
        """Seconds to wait before retry number `attempt` (1-based); the server's
        `retry-after` wins over the backoff."""
        response = getattr(error, "response", None)
        if response is not None:
            for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
                value = response.headers.get(header)
                try:
                    if value is not None:
                        return min(float(value) * scale, self.max_s)
                except ValueError:
                    pass
        backoff = self.base_s * 2 ** (attempt - 1)
        return min(backoff * (0.75 + random.random() / 2), self.max_s)


def error_type(error: Exception) -> str:
    """The API's error `type` (billing_error, overloaded_error, ...), or "" when there is none."""
    body = getattr(error, "body", None)
    detail = body.get("error", body) if isinstance(body, dict) else None
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    return kind if isinstance(kind, str) else ""


def stops_the_run(error: Exception) -> bool:
    """401, 402 and 403, and their error types wherever they arrive (a mid-stream event too)."""
    if not isinstance(error, anthropic.APIStatusError):
        return False
    return error.status_code in STOP_STATUSES or error_type(error) in STOP_TYPES


def is_retryable(error: Exception) -> bool:
    if stops_the_run(error):
        return False
    if isinstance(error, anthropic.APIConnectionError):  # includes timeouts and resets
        return True
    if isinstance(error, anthropic.APIStatusError):
        # 200 here is an error event inside a stream: an overload that arrived mid-stream.
        return error.status_code in (200, 408, 409, 429) or error.status_code >= 500
    return False


def describe_error(error: Exception) -> str:
    if isinstance(error, anthropic.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        detail = body.get("error", body) if isinstance(body, dict) else {}
        kind = detail.get("type", "") if isinstance(detail, dict) else ""
        message = detail.get("message", "") if isinstance(detail, dict) else ""
        status = "mid-stream error" if error.status_code == 200 else f"HTTP {error.status_code}"
        return f"{status} {kind}: {message}".strip().rstrip(":")
    if isinstance(error, anthropic.APITimeoutError):
        return "request timed out"
    if isinstance(error, anthropic.APIConnectionError):
        return f"connection failed ({error.__cause__ or error})"
    return f"{type(error).__name__}: {error}"


def judge_message(message: Any, schema: type[BaseModel], request_id: str | None) -> CallResult:
    """Accept only a complete, schema-valid JSON answer; anything else is a reject with a reason."""
    usage = Usage.from_api(getattr(message, "usage", None))
    stop = getattr(message, "stop_reason", None)
    if stop in ("max_tokens", "refusal", "model_context_window_exceeded"):
        return CallResult("rejected", usage=usage, request_id=request_id, reason=f"stop_reason {stop}")
    # Thinking blocks (adaptive thinking is on by default on current models) are not the answer.
    text = "".join(b.text for b in message.content if getattr(b, "type", "") == "text").strip()
    if not text:
        return CallResult("rejected", usage=usage, request_id=request_id,
                          reason=f"no text in the reply (stop_reason {stop})")
    try:
        output = schema.model_validate_json(text).model_dump(by_alias=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors()[:5])
        return CallResult("rejected", usage=usage, request_id=request_id, reason=f"invalid output: {problems}")
    return CallResult("accepted", output=output, usage=usage, request_id=request_id)


async def with_retries(make_call: Callable[[], Awaitable[T]], policy: RetryPolicy) -> T:
    """A plain API call (batches, token counts) under the same retry policy; access errors
    become `ClaudeAccessError`, anything else not retryable propagates."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await make_call()
        except anthropic.APIError as exc:
            if stops_the_run(exc):
                raise access_error(exc) from None
            if is_retryable(exc) and attempt <= policy.max_retries:
                await asyncio.sleep(policy.delay(attempt, exc))
                continue
            raise


def access_error(exc: Exception) -> ClaudeAccessError:
    """The one line a run stops with after a 401, 402 or 403."""
    status = getattr(exc, "status_code", None)
    if status == 402 or error_type(exc) == "billing_error":
        return ClaudeAccessError(
            f"the Claude API refused to bill the account ({describe_error(exc)}); add credit or raise the "
            "spend limit in the Anthropic console, then run again: finished records are kept and no call was retried"
        )
    if status == 403 or error_type(exc) == "permission_error":
        return ClaudeAccessError(
            f"the Claude API refused permission ({describe_error(exc)}); check that ANTHROPIC_API_KEY may use this "
            "model and workspace, then run again: finished records are kept"
        )
    return ClaudeAccessError(
        f"the Claude API refused the credentials ({describe_error(exc)}); check ANTHROPIC_API_KEY "
        "(and ANTHROPIC_BASE_URL if set), then run again: finished records are kept"
    )


async def call_structured(client: anthropic.AsyncAnthropic, params: dict[str, Any],
                          schema: type[BaseModel], policy: RetryPolicy) -> CallResult:
    """Stream one request to the end and judge it; retry transient faults per `policy`."""
    params = dict(params)
    # The SDK no longer has arguments for sampling parameters (current models refuse them);
    # when a person configures them anyway they go in the body as written.
    sampling = {key: params.pop(key) for key in ("temperature", "top_p") if key in params}
    attempt = 0
    while True:
        attempt += 1
        try:
            async with client.messages.stream(**params, extra_body=sampling or None) as stream:
                message = await stream.get_final_message()
                request_id = stream.request_id
        except (TimeoutError, anthropic.APIError) as exc:
            if stops_the_run(exc):
                raise access_error(exc) from None
            if is_retryable(exc) and attempt <= policy.max_retries:
                await asyncio.sleep(policy.delay(attempt, exc))
                continue
            return CallResult("failed", request_id=getattr(exc, "request_id", None),
                              reason=describe_error(exc), attempts=attempt)
        result = judge_message(message, schema, request_id)
        result.attempts = attempt
        return result
