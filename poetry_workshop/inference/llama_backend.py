"""A role's model on llama.cpp: load lazily, render the GGUF's own chat template, stream.

Why each choice:
- The prompt is rendered from the template stored in the GGUF (never llama-cpp-python's
  silent llama-2 fallback) and tokenized here, so the engine knows the exact prompt tokens
  and can report how many of them the KV cache already held.
- llama-cpp-python reuses the KV cache for the longest token prefix shared with the previous
  call on the same object; conversations only ever append, so round k evaluates only the
  new turn.
- Control tokens (end of turn, role headers) are rendered as empty text by the detokenizer,
  so generation stops on their token ids, and on their literal text as a second guard.
- A thinking model's reasoning is cut from the stream here, the one place every front end
  and the store read from (`reasoning_filter`); its tokens are counted apart. The template
  is rendered with the role's thinking setting, the same way for counting and generating.
"""

from __future__ import annotations

import codecs
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.errors import GenerationError, ModelFileError
from poetry_workshop.inference.gguf_file import GGUFInfo, read_gguf, require_chat_template
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.reasoning_filter import ReasoningFilter
from poetry_workshop.inference.thinking import (
    THINK_CLOSE,
    THINK_OPEN,
    close_open_thought,
    opens_thought,
    thinking_template,
)


@dataclass
class GenerationStats:
    """What one call cost: the figures the engine reports per call."""

    prompt_tokens: int
    evaluated_tokens: int  # prompt tokens not already in the KV cache
    generated_tokens: int  # reasoning included: what the call cost
    seconds: float
    finish_reason: str  # "stop" (end of turn), "length" (max_tokens), "cancelled"
    dropped_rounds: int = 0
    thinking_tokens: int = 0  # of the generated tokens, those spent reasoning in <think>…</think>

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Completion:
    text: str  # exactly what was generated, stop tokens and reasoning excluded
    stats: GenerationStats


def auto_threads() -> int:
    """All cores but one: llama.cpp's threads spin at each barrier, so when they claim every
    core any other busy process (the app's own UI, a test runner) can slow generation tenfold
    (seen on 2 cores: 1 tok/s instead of 50)."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def _reused_prefix(cached: Sequence[int], tokens: Sequence[int]) -> int:
    """How many prompt tokens llama-cpp-python will take from its KV cache (its own rule)."""
    n = 0
    for a, b in zip(cached, tokens):
        if a != b:
            break
        n += 1
    return n - 1 if n == len(tokens) and n > 0 else n


class _StopText:
    """Emits generated text, holding back any tail that could be the start of a stop text
    (a role header spelt out in ordinary tokens), and cutting the text where one appears."""

    def __init__(self, stops: list[str], emit: Callable[[str], None]):
        self.stops = [s for s in stops if s]
        self.emit = emit
        self.pending = ""

    def feed(self, piece: str) -> bool:
        """Add text; True when a stop text was found (the text before it is emitted)."""
        self.pending += piece
        hits = [i for i in (self.pending.find(s) for s in self.stops) if i >= 0]
        if hits:
            before, self.pending = self.pending[: min(hits)], ""
            if before:
                self.emit(before)
            return True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.pending)), keep, -1):
                if self.pending.endswith(stop[:n]):
                    keep = n
                    break
        ready = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(ready) :]
        if ready:
            self.emit(ready)
        return False

    def finish(self, tail: str = "") -> None:
        """Emit what was held back (the generation ended without a stop text)."""
        out, self.pending = self.pending + tail, ""
        if out:
            self.emit(out)


class LlamaBackend:
    """One GGUF file, one `Llama` object, used only on the shared inference thread."""

    def __init__(self, path: Path, runtime: Runtime, thread: InferenceThread, thinking: bool = False,
                 adapter: Path | None = None):
        self.path = Path(path)
        self.adapter = Path(adapter) if adapter else None  # a LoRA adapter GGUF applied at load
        self.info: GGUFInfo = read_gguf(self.path)  # fails fast, before any load
        self.template = require_chat_template(self.info)
        self.thinking_template = thinking_template(self.template)
        self.thinking = thinking  # the role's setting: let a thinking model reason first
        self.runtime = runtime
        self._thread = thread
        self._llm = None
        self._formatter = None
        self._stop_ids: set[int] = set()
        self._think_ids: set[int] = set()
        self.stop_texts: list[str] = []

    # -------------------------------------------------------------- on the inference thread
    def _ensure_loaded(self):
        if self._llm is not None:
            return self._llm
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = self.runtime.n_threads or auto_threads()
        try:
            llm = Llama(
                model_path=str(self.path),
                n_ctx=self.runtime.n_ctx,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=self.runtime.n_batch,
                n_gpu_layers=self.runtime.n_gpu_layers,
                seed=self.runtime.seed,
                lora_path=str(self.adapter) if self.adapter else None,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(
                f"{self.path}: llama.cpp could not load the model ({exc}); the file may be "
                "truncated or corrupt: download or export it again"
            ) from None
        eos_text = self._piece(llm, llm.token_eos())
        bos_text = self._piece(llm, llm.token_bos()) if llm.token_bos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(self.template, eos_token=eos_text, bos_token=bos_text)
        self._stop_ids, self.stop_texts, self._think_ids = self._turn_markers(llm)
        self._bos_text = bos_text
        self._llm = llm
        return llm

    @staticmethod
    def _piece(llm, token: int) -> str:
        return llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def _turn_markers(self, llm) -> tuple[set[int], list[str], set[int]]:
        """Control tokens that end a turn or start a role header, and the think tags' tokens.

        End-of-generation tokens always; other control tokens when their text appears in the
        chat template (that is what a role header or turn separator is), except the think
        tags: a thinking template mentions them too, and they open reasoning, not a turn.
        A think tag that is a control token is detokenized as text, for the reasoning filter."""
        import llama_cpp

        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        ids: set[int] = set()
        texts: set[str] = set()
        think: set[int] = set()
        for token in range(llm.n_vocab()):
            attr = llama_cpp.llama_vocab_get_attr(vocab, token)
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                ids.add(token)
                piece = self._piece(llm, token)
                if piece:
                    texts.add(piece)
            elif attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL:
                piece = self._piece(llm, token)
                if piece in (THINK_OPEN, THINK_CLOSE):
                    think.add(token)
                elif piece and piece in self.template:
                    ids.add(token)
                    texts.add(piece)
        return ids, sorted(texts), think

    def _render(self, messages: list[dict[str, str]]) -> str:
        """The prompt text for `messages`: the one rendering both counting and generating use."""
        self._ensure_loaded()
        try:
            prompt = self._formatter(messages=messages, **self.thinking_template.render_kwargs(self.thinking)).prompt
        except Exception as exc:  # a template's raise_exception or a Jinja error
            raise GenerationError(f"{self.path}: its chat template refused the conversation ({exc})")
        # A template with no switch that always opens a think block (DeepSeek-R1) is turned
        # off the way Qwen3's switch does it: an empty block, closed.
        return prompt if self.thinking else close_open_thought(prompt)

    def _tokenize(self, prompt: str) -> list[int]:
        has_bos = bool(self._bos_text) and prompt.startswith(self._bos_text)
        return self._ensure_loaded().tokenize(prompt.encode("utf-8"), add_bos=not has_bos, special=True)

    # ------------------------------------------------------------------- from any thread
    @property
    def n_ctx(self) -> int:
        return self.runtime.n_ctx

    def load(self) -> None:
        self._thread.call(self._ensure_loaded)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The exact tokens a generation for `messages` would evaluate."""
        return self._thread.call(lambda: self._tokenize(self._render(messages)))

    def count_tokens(self, messages: list[dict[str, str]]) -> int:
        return len(self.prompt_tokens(messages))

    def generate(
        self,
        messages: list[dict[str, str]],
        max_tokens: int,
        sampling: Sampling,
        on_text: Callable[[str], None] | None = None,
        cancel: threading.Event | None = None,
        seed_offset: int = 0,
    ) -> Completion:
        """Stream a reply to `messages`; `on_text` gets each chunk on the caller's thread.

        Cancel takes effect within one token: the producer checks the event after each one.
        The sampling seed is the configured one plus `seed_offset`, so a caller can ask the
        same question twice and get two replies while a whole run still repeats exactly.
        """

        def produce(emit) -> GenerationStats:
            llm = self._ensure_loaded()
            prompt = self._render(messages)
            tokens = self._tokenize(prompt)
            reused = _reused_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
            llm.set_seed(self.runtime.seed + seed_offset)
            started = time.perf_counter()
            reasoning = ReasoningFilter(emit, inside=opens_thought(prompt))
            text = _StopText(self.stop_texts, reasoning.feed)
            thinking_tokens = 0
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generated: list[int] = []
            finish = "length"
            stream = llm.generate(
                tokens,
                temp=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                min_p=sampling.min_p,
                repeat_penalty=sampling.repeat_penalty,
            )
            try:
                for token in stream:
                    # Checked before the token is accepted, so a cancel costs at most one token.
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if token in self._stop_ids:
                        finish = "stop"
                        break
                    piece = llm.detokenize([token], special=token in self._think_ids)
                    generated.append(token)
                    was_thinking = reasoning.inside
                    stopped = text.feed(decoder.decode(piece))
                    # A tag token counts as reasoning (it opens or closes it); a tag spelt in
                    # several tokens may leave one or two on the answer's side.
                    if was_thinking or reasoning.inside:
                        thinking_tokens += 1
                    if stopped:
                        finish = "stop"
                        break
                    if len(generated) >= max_tokens:
                        break
            finally:
                stream.close()
            if finish != "stop":
                text.finish(decoder.decode(b"", final=True))
            reasoning.finish()
            return GenerationStats(
                prompt_tokens=len(tokens),
                evaluated_tokens=len(tokens) - reused,
                generated_tokens=len(generated),
                seconds=time.perf_counter() - started,
                finish_reason=finish,
                thinking_tokens=thinking_tokens,
            )

        parts: list[str] = []
        for item in self._thread.stream(produce):
            if isinstance(item, GenerationStats):
                return Completion(text="".join(parts), stats=item)
            parts.append(item)
            if on_text is not None:
                on_text(item)
        raise GenerationError(f"{self.path}: generation ended without a result")

    def close(self) -> None:
        def free():
            if self._llm is not None:
                self._llm.close()
                self._llm = None

        self._thread.call(free)
