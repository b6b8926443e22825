"""A role's model on llama.cpp: load lazily, render the GGUF's own chat template, stream.

Why each choice:
- The prompt is rendered from the template stored in the GGUF (never llama-cpp-python's
  silent llama-2 fallback) and tokenized here, so the engine knows the exact prompt tokens
  and can report how many of them the KV cache already held.
- llama-cpp-python reuses the KV cache for the longest token prefix shared with the previous
  call on the same object; conversations only ever append, so round k evaluates only the
  new turn. How many prompt tokens were evaluated is read from llama.cpp's own counters
  (the context's performance data), so what is reported is what happened.
- Prompt-lookup decoding (`_Decoding`): tokens the reply is likely to copy from the
  conversation (`prompt_lookup`) are evaluated in one batch with logits at every position,
  and each position is sampled by the same sampler chain plain decoding uses (same
  penalties history, same random draws), accepted while the sample equals the candidate.
  Every emitted token is the model's own sample, so the text is plain decoding's as long
  as a batch's logits equal one-token decoding's: flash attention on, lookup off on a CPU
  running several threads (`lookup_may_keep_text`), and otherwise on only where the model,
  asked once after its load, gives a batch the logits one-token decoding gives
  (`batch_logits`: K-quants on the CPU do not). How many candidates to check is the
  `CandidateBudget`'s call, from decode costs measured on this machine.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.errors import GenerationError, ModelFileError
from poetry_workshop.inference.batch_logits import TOLERANCE as BATCH_LOGIT_TOLERANCE
from poetry_workshop.inference.batch_logits import batch_logit_gap
from poetry_workshop.inference.gguf_file import GGUFInfo, read_gguf, require_chat_template
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.prompt_lookup import MAX_CANDIDATES, CandidateBudget, CheckCost, PromptLookup
from poetry_workshop.inference.reasoning_filter import ReasoningFilter
from poetry_workshop.inference.thinking import (
    THINK_CLOSE,
    THINK_OPEN,
    close_open_thought,
    opens_thought,
    thinking_template,
)

# Flash attention computes each query row the same way whatever the batch, so the logits of a
# batch of lookup candidates are bit-identical to one-token decoding's. Without it the CPU
# build picks its attention matmul kernel by shape: measured on the starter model, positions
# checked in a batch differed from one-token decoding by up to 0.9 in a logit (1-2% in a
# probability), enough to change a sampled reply within a few lines.
FLASH_ATTENTION = True


def lookup_may_keep_text(threads: int, n_gpu_layers: int) -> bool:
    """Whether lookup can keep plain decoding's text here at any context length, before
    the model is asked (`batch_logits`).

    On the CPU with several threads, llama.cpp's one-token flash attention splits a long
    KV cache (from about 512 tokens) across the threads and adds the parts in another
    order than a batch does; a quantized model quantizes its activations to 8 bits, which
    turns that last-bit difference into up to ~1 in a logit (measured on the starter
    model), so a sampled reply soon parts ways. A short probe cannot see that, so it is
    ruled out here; one CPU thread, or the layers on a GPU, leave it to the probe."""
    import llama_cpp

    on_gpu = n_gpu_layers != 0 and llama_cpp.llama_supports_gpu_offload()
    return on_gpu or threads == 1


@dataclass
class GenerationStats:
    """What one call cost: the figures the engine reports per call."""

    prompt_tokens: int
    evaluated_tokens: int  # prompt tokens llama.cpp evaluated: those not already in the KV cache
    generated_tokens: int  # reasoning included: what the call cost
    seconds: float
    finish_reason: str  # "stop" (end of turn), "length" (max_tokens), "cancelled"
    dropped_rounds: int = 0
    thinking_tokens: int = 0  # of the generated tokens, those spent reasoning in <think>…</think>
    lookup_proposed: int = 0  # prompt-lookup candidates the model checked
    lookup_accepted: int = 0  # of those, the ones its own samples confirmed (emitted at batch speed)

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def lookup_acceptance(self) -> float:
        """Share of the proposed candidates the model confirmed (0 when none was proposed)."""
        return self.lookup_accepted / self.lookup_proposed if self.lookup_proposed else 0.0


@dataclass
class Completion:
    text: str  # exactly what was generated, stop tokens and reasoning excluded
    stats: GenerationStats


def auto_threads() -> int:
    """All cores but one: llama.cpp's threads spin at each barrier, so when they claim every
    core any other busy process (the app's own UI, a test runner) can slow generation tenfold
    (seen on 2 cores: 1 tok/s instead of 50)."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))


def auto_batch_threads() -> int:
    """All cores for a batch (a prompt, a set of lookup candidates): each of its steps is
    long enough that a barrier costs little, so unlike one-token decoding it loses nothing
    to a busy core. Measured on 2 cores, a 500-token prompt on the starter: 1.83 s on both
    cores, 3.40 s on one; with the other core busy, 3.34 s and 3.38 s. A batch's logits do
    not depend on its thread count (each row and each dot product is one thread's work)."""
    return max(1, min(8, os.cpu_count() or 1))


# llama-cpp-python's `Llama` reads llama.cpp's model defaults through one module function
# and takes no argument for some of them; loads that change one swap that function, so they
# take turns.
_MODEL_PARAMS_LOCK = threading.Lock()


@contextmanager
def _model_params(**fields):
    """Load a `Llama` inside this block to set llama.cpp model parameters that its
    constructor does not take (`use_extra_bufts` in 0.3.36)."""
    import llama_cpp.llama as llama_module

    library = llama_module.llama_cpp
    defaults = library.llama_model_default_params

    def with_fields():
        params = defaults()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    with _MODEL_PARAMS_LOCK:
        library.llama_model_default_params = with_fields
        try:
            yield
        finally:
            library.llama_model_default_params = defaults


def _prompt_evaluated(llm) -> int:
    """Prompt tokens llama.cpp evaluated since `_reset_counters`, from its own counters.

    llama.cpp counts a decode of one token in `n_eval` and of several in `n_p_eval`, and
    reports each count as at least 1, so a count is taken only where time was spent on it."""
    import llama_cpp

    data = llama_cpp.llama_perf_context(llm._ctx.ctx)
    return (data.n_p_eval if data.t_p_eval_ms > 0 else 0) + (data.n_eval if data.t_eval_ms > 0 else 0)


def _reset_counters(llm) -> None:
    import llama_cpp

    # Work queued before the reset is added to the counters at the next synchronize.
    llama_cpp.llama_synchronize(llm._ctx.ctx)
    llama_cpp.llama_perf_context_reset(llm._ctx.ctx)


class _Decoding:
    """The model's own samples after `prompt`, one token at a time, several positions per
    llama.cpp call when a `PromptLookup` proposes what comes next.

    The prompt goes through `Llama.generate` (its KV-cache prefix reuse and its sampler
    chain, seeded as configured) up to the first sample; from there this loop evaluates
    the last sample plus the candidates with logits at every position and samples each
    position in order with that same chain, so the penalties history and the random draws
    are plain decoding's. A sample that differs from its candidate is emitted and ends the
    batch; the KV cache is cut back to the positions the samples confirmed. Uses
    llama-cpp-python's `_ctx`, `_batch` and `_sampler` (pinned at 0.3.36), as its own
    `generate` does."""

    def __init__(self, llm, prompt: list[int], sampling: Sampling, max_tokens: int, cost: CheckCost | None):
        """`cost` is the model's measured decode costs; None decodes plainly (no lookup)."""
        self.llm = llm
        self.prompt = prompt
        self.sampling = sampling
        self.max_tokens = max_tokens
        self.lookup = PromptLookup(prompt) if cost is not None else None
        self.budget = CandidateBudget(cost) if cost is not None else None
        self.cost = cost
        self._guess: list[int] = []  # a proposal not checked: the next tokens show if it was right
        self.prompt_evaluated = 0
        self.proposed = 0
        self.accepted = 0

    def _evaluate(self, tokens: list[int]) -> None:
        """`Llama.eval` for a short run of tokens, asking for logits at every position."""
        llm = self.llm
        n_past = llm.n_tokens
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=tokens, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        llm.input_ids[n_past : n_past + len(tokens)] = tokens
        llm.n_tokens = n_past + len(tokens)
        llm._requires_eval = False

    def _keep(self, n: int) -> None:
        """Drop the KV cache past position `n` (candidates the samples did not confirm)."""
        llm = self.llm
        if llm.n_tokens > n:
            llm._ctx.kv_cache_seq_rm(-1, n, -1)
            llm.n_tokens = n
            # The last logits belong to a dropped position: the next prompt must re-evaluate.
            llm._requires_eval = True

    def _room(self, emitted: int) -> int:
        """Candidates worth checking: no more than the reply may still need after the
        pending token, and within the context and one llama.cpp batch."""
        llm = self.llm
        return min(self.max_tokens - emitted - 1, llm.n_ctx() - llm.n_tokens - 1, llm.n_batch - 1)

    def _candidates(self, emitted: int) -> list[int]:
        """What to check with the pending token: as many proposed tokens as pay their way."""
        if self.lookup is None:
            return []
        room = self._room(emitted)
        size = self.budget.size(room)
        if size == 0:
            self._guess = self.lookup.propose(min(room, MAX_CANDIDATES))
            return []
        self._guess = []
        return self.lookup.propose(size)

    def _emitted(self, token: int) -> None:
        if self.lookup is None:
            return
        self.lookup.append(token)
        if self._guess:
            right = token == self._guess[0]
            self.budget.observe(right)
            self._guess = self._guess[1:] if right else []

    def _check(self, batch: list[int]) -> None:
        """Evaluate the pending token and its candidates, timing it for the budget."""
        if self.cost is None:
            self._evaluate(batch)
            return
        import llama_cpp

        started = time.perf_counter()
        self._evaluate(batch)
        llama_cpp.llama_synchronize(self.llm._ctx.ctx)  # the sample would wait here anyway
        self.cost.observe(len(batch) - 1, time.perf_counter() - started)

    def tokens(self) -> Iterator[int]:
        llm, s = self.llm, self.sampling
        _reset_counters(llm)
        stream = llm.generate(self.prompt, temp=s.temperature, top_p=s.top_p, top_k=s.top_k, min_p=s.min_p,
                              repeat_penalty=s.repeat_penalty)
        try:
            token = next(stream)
        finally:
            stream.close()
        self.prompt_evaluated = _prompt_evaluated(llm)
        kept = llm.n_tokens
        emitted = 0
        try:
            while True:
                yield token
                emitted += 1
                self._emitted(token)
                candidates = self._candidates(emitted)
                self._check([token, *candidates])
                self.proposed += len(candidates)
                kept = llm.n_tokens - len(candidates)
                for i in range(len(candidates) + 1):
                    token = llm._sampler.sample(llm._ctx, i)
                    if i == len(candidates):
                        break
                    confirmed = token == candidates[i]
                    self.budget.observe(confirmed)
                    if not confirmed:
                        break
                    self.accepted += 1
                    yield token
                    emitted += 1
                    self.lookup.append(token)
                    kept += 1
                self._keep(kept)
        finally:
            self._keep(kept)


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
                 adapter: Path | None = None, lookup: bool = True, shared_weights: bool = False):
        """`shared_weights`: another role maps the same file, so its weights are used as
        mapped (see `_ensure_loaded`)."""
        self.path = Path(path)
        self.shared_weights = shared_weights
        self.adapter = Path(adapter) if adapter else None  # a LoRA adapter GGUF applied at load
        self.info: GGUFInfo = read_gguf(self.path)  # fails fast, before any load
        self.template = require_chat_template(self.info)
        self.thinking_template = thinking_template(self.template)
        self.thinking = thinking  # the role's setting: let a thinking model reason first
        self.lookup = lookup  # prompt-lookup decoding: the same text, copied spans checked in batches
        self.check_cost = CheckCost()  # this model's decode costs on this machine, for the lookup
        self.batch_logit_gap: float | None = None  # measured on first use of the lookup (`batch_logits`)
        self.runtime = runtime
        self._thread = thread
        self._llm = None
        self._formatter = None
        self._stop_ids: set[int] = set()
        self._think_ids: set[int] = set()
        self.stop_texts: list[str] = []

    # -------------------------------------------------------------- on the inference thread
    def _apply_adapter(self, llm) -> None:
        """Apply the LoRA adapter to the loaded model's context.

        Not through `Llama(lora_path=...)`: that turns memory mapping off (from the days when
        llama.cpp wrote an adapter into the weights), so each role would hold a private copy
        of the base two adapters share. llama.cpp applies an adapter in the compute graph
        now, so the mapped base stays shared between roles and with the page cache."""
        import ctypes

        import llama_cpp

        adapter = llama_cpp.llama_adapter_lora_init(llm._model.model, str(self.adapter).encode())
        if not adapter:
            raise ModelFileError(f"{self.adapter}: llama.cpp could not load the LoRA adapter for {self.path.name}; "
                                 "export it again with `workshop export ROLE --adapter`")
        llm._stack.callback(llama_cpp.llama_adapter_lora_free, adapter)  # freed before the model
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(1.0)
        if llama_cpp.llama_set_adapters_lora(llm._ctx.ctx, adapters, 1, scales):
            raise ModelFileError(f"{self.adapter}: llama.cpp could not apply the LoRA adapter to {self.path.name}")

    def _ensure_loaded(self):
        if self._llm is not None:
            return self._llm
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        threads = self.threads
        # On the CPU llama.cpp repacks Q4_0 and K-quant weights for its faster kernels into
        # a private copy (measured on the starter at Q4_0: 57 of its 85 MB, decode 114
        # tok/s against 83 mapped). Where two roles map one file, each would hold its own
        # copy, undoing the sharing an adapter role exists for, so those load as mapped.
        try:
            with _model_params(use_extra_bufts=not self.shared_weights):
                llm = Llama(
                    model_path=str(self.path),
                    n_ctx=self.runtime.n_ctx,
                    n_threads=threads,
                    n_threads_batch=self.runtime.n_threads_batch or auto_batch_threads(),
                    n_batch=self.runtime.n_batch,
                    n_gpu_layers=self.runtime.n_gpu_layers,
                    seed=self.runtime.seed,
                    flash_attn=FLASH_ATTENTION,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise ModelFileError(
                f"{self.path}: llama.cpp could not load the model ({exc}); the file may be "
                "truncated or corrupt: download or export it again"
            ) from None
        if self.adapter is not None:
            try:
                self._apply_adapter(llm)
            except BaseException:
                llm.close()
                raise
        eos_text = self._piece(llm, llm.token_eos())
        bos_text = self._piece(llm, llm.token_bos()) if llm.token_bos() >= 0 else ""
        self._formatter = Jinja2ChatFormatter(self.template, eos_token=eos_text, bos_token=bos_text)
        self._stop_ids, self.stop_texts, self._think_ids = self._turn_markers(llm)
        self._bos_text = bos_text
        self._llm = llm
        return llm

    def _lookup_keeps_text(self, llm) -> bool:
        """Whether prompt lookup leaves this model's text as plain decoding writes it; the
        model is probed once, before its first generation with lookup."""
        if not lookup_may_keep_text(self.threads, self.runtime.n_gpu_layers):
            return False
        if self.batch_logit_gap is None:
            self.batch_logit_gap = batch_logit_gap(llm)
        return self.batch_logit_gap <= BATCH_LOGIT_TOLERANCE

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
    def threads(self) -> int:
        return self.runtime.n_threads or auto_threads()

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
            llm.set_seed(self.runtime.seed + seed_offset)
            started = time.perf_counter()
            reasoning = ReasoningFilter(emit, inside=opens_thought(prompt))
            text = _StopText(self.stop_texts, reasoning.feed)
            thinking_tokens = 0
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            generated: list[int] = []
            finish = "length"
            lookup = self.lookup and self._lookup_keeps_text(llm)
            decoding = _Decoding(llm, tokens, sampling, max_tokens, self.check_cost if lookup else None)
            stream = decoding.tokens()
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
                evaluated_tokens=decoding.prompt_evaluated,
                generated_tokens=len(generated),
                seconds=time.perf_counter() - started,
                finish_reason=finish,
                thinking_tokens=thinking_tokens,
                lookup_proposed=decoding.proposed,
                lookup_accepted=decoding.accepted,
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
