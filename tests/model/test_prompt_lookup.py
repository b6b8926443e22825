"""Prompt-lookup decoding on the real starter model: a revision and a critique come out the
same with lookup and without, greedy and sampled at a fixed seed, and a revision's copied
lines are confirmed in batches.

Each generation runs on a freshly loaded model, so both sides evaluate the prompt the same
way (in one large batch) and differ only in how the reply is decoded. One CPU thread: the
setting where llama.cpp's batched and one-token arithmetic are bit-identical, and the one
`auto_threads` picks on a two-core machine (with more, lookup turns itself off on the CPU;
see `lookup_is_exact`)."""

from __future__ import annotations

import pytest

from bench.engine import KEPT_BRIEF as BRIEF
from bench.engine import KEPT_CRITIQUE as CRITIQUE
from bench.engine import KEPT_DRAFT as POEM
from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import Completion, LlamaBackend
from poetry_workshop.inference.prompt_lookup import CheckCost
from poetry_workshop.pipeline.training.gguf_export import quantize
from poetry_workshop.workshop import prompts
from poetry_workshop.workshop.persona import load_persona

pytestmark = pytest.mark.model

GREEDY = Sampling(temperature=0.0, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1)
SAMPLED = Sampling(temperature=0.9, top_p=0.95, top_k=40, min_p=0.05, repeat_penalty=1.1)


class CheapChecks(CheckCost):
    """Costs as on a machine where a decode waits on memory (a GPU, Apple silicon): checking
    a candidate adds little, so the budget checks as many as it can. Fixed, so the test does
    not depend on this machine's load."""

    def __init__(self) -> None:
        super().__init__()
        self.single, self.per_candidate = 0.02, 0.001

    def observe(self, candidates: int, seconds: float) -> None:
        pass


@pytest.fixture(scope="module")
def thread():
    t = InferenceThread()
    yield t
    t.close()


@pytest.fixture(scope="module")
def persona():
    return load_persona()


def revision(persona) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": persona.poet_system},
        {"role": "user", "content": prompts.draft_request(BRIEF)},
        {"role": "assistant", "content": POEM},
        {"role": "user", "content": prompts.revise_request(CRITIQUE, None)},
    ]


def critique(persona) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": persona.educator_system},
        {"role": "user", "content": prompts.critique_request(POEM)},
    ]


def generate(thread, gguf, messages, sampling, lookup: bool, cost: CheckCost | None = None,
             max_tokens: int = 160) -> Completion:
    backend = LlamaBackend(gguf, Runtime(n_ctx=2048, n_threads=1, seed=42), thread, lookup=lookup)
    if cost is not None:
        backend.check_cost = cost
    try:
        return backend.generate(messages, max_tokens, sampling)
    finally:
        backend.close()


@pytest.mark.parametrize("sampling", [GREEDY, SAMPLED], ids=["greedy", "sampled"])
@pytest.mark.parametrize("conversation", [revision, critique], ids=["revision", "critique"])
def test_lookup_writes_what_plain_decoding_writes(thread, starter_gguf, persona, conversation, sampling):
    messages = conversation(persona)
    plain = generate(thread, starter_gguf, messages, sampling, lookup=False)
    looked = generate(thread, starter_gguf, messages, sampling, lookup=True, cost=CheapChecks())
    assert plain.stats.generated_tokens > 20
    assert looked.text == plain.text
    assert looked.stats.generated_tokens == plain.stats.generated_tokens
    assert looked.stats.finish_reason == plain.stats.finish_reason
    assert plain.stats.lookup_proposed == 0
    assert looked.stats.lookup_proposed > 0
    assert looked.stats.lookup_accepted <= looked.stats.lookup_proposed
    if conversation is revision:
        # The revision copies the lines the critique said to keep.
        assert "harbour lights across the sand" in looked.text
        assert looked.stats.lookup_accepted > 0 and looked.stats.lookup_acceptance > 0


def test_measured_costs_keep_the_text_too(thread, starter_gguf, persona):
    """With this machine's own measured costs the budget checks fewer candidates, or none;
    the text is plain decoding's either way."""
    messages = revision(persona)
    plain = generate(thread, starter_gguf, messages, SAMPLED, lookup=False)
    looked = generate(thread, starter_gguf, messages, SAMPLED, lookup=True)
    assert looked.text == plain.text
    assert looked.stats.lookup_accepted <= looked.stats.lookup_proposed


def test_a_stop_inside_a_batch_leaves_the_cache_fit_for_the_next_round(thread, starter_gguf, persona):
    """A reply that ends (here at max_tokens) among confirmed candidates cuts the KV cache
    back, so the next round reuses the conversation and still matches plain decoding."""
    backends = {
        lookup: LlamaBackend(starter_gguf, Runtime(n_ctx=2048, n_threads=1, seed=42), thread, lookup=lookup)
        for lookup in (False, True)
    }
    backends[True].check_cost = CheapChecks()
    try:
        texts = {}
        for lookup, backend in backends.items():
            messages = revision(persona)
            first = backend.generate(messages, 12, GREEDY)
            messages += [{"role": "assistant", "content": first.text},
                         {"role": "user", "content": "Once more, the whole poem."}]
            second = backend.generate(messages, 60, GREEDY)
            assert second.stats.evaluated_tokens < second.stats.prompt_tokens / 2
            texts[lookup] = (first.text, second.text)
        assert texts[True] == texts[False]
    finally:
        for backend in backends.values():
            backend.close()


def test_lookup_stands_down_where_batches_would_change_the_text(thread, starter_gguf, persona):
    backend = LlamaBackend(starter_gguf, Runtime(n_ctx=2048, n_threads=2, n_gpu_layers=0, seed=42), thread, lookup=True)
    backend.check_cost = CheapChecks()
    try:
        reply = backend.generate(revision(persona), 40, GREEDY)
    finally:
        backend.close()
    assert reply.stats.generated_tokens > 0 and reply.stats.lookup_proposed == 0


@pytest.fixture(scope="module")
def k_quant_gguf(starter_gguf, tmp_path_factory):
    """The starter requantized to Q4_K_M, the export's own format (llama.cpp's quantizer)."""
    out = tmp_path_factory.mktemp("kquant") / "starter.Q4_K_M.gguf"
    quantize(starter_gguf, out, "Q4_K_M", requantize=True)
    return out


def probed(thread, gguf) -> LlamaBackend:
    backend = LlamaBackend(gguf, Runtime(n_ctx=2048, n_threads=1, seed=42), thread)
    backend.check_cost = CheapChecks()
    return backend


def test_a_model_whose_batches_match_one_token_decoding_is_probed_once_and_looks_up(thread, starter_gguf, persona):
    backend = probed(thread, starter_gguf)
    try:
        first = backend.generate(revision(persona), 60, SAMPLED)
        assert backend.batch_logit_gap == 0.0  # Q4_1 on one CPU thread: bit-identical
        assert first.stats.lookup_proposed > 0
        # The probe left nothing behind: the next reply reuses the prompt like any other
        # (its text may differ: a prompt evaluated in one large batch and one taken from the
        # cache give its last position other arithmetic, lookup or not).
        again = backend.generate(revision(persona), 60, SAMPLED)
        assert again.stats.evaluated_tokens < again.stats.prompt_tokens
        assert backend.batch_logit_gap == 0.0
    finally:
        backend.close()


def test_a_k_quant_model_on_the_cpu_keeps_plain_decoding(thread, k_quant_gguf, persona):
    """K-quant kernels give a batch other logits than one token (measured here: up to ~1.4),
    so the probe turns lookup off and the reply is plain decoding's."""
    from poetry_workshop.inference.batch_logits import TOLERANCE

    backend = probed(thread, k_quant_gguf)
    try:
        looked = backend.generate(revision(persona), 80, SAMPLED)
        gap = backend.batch_logit_gap
    finally:
        backend.close()
    plain = generate(thread, k_quant_gguf, revision(persona), SAMPLED, lookup=False, max_tokens=80)
    assert gap is not None and gap > TOLERANCE
    assert looked.stats.lookup_proposed == 0
    assert looked.text == plain.text


@pytest.mark.parametrize(("n_batch", "looks_up"), [(1, False), (4, True)])
def test_the_probe_stays_within_a_small_batch_setting(thread, starter_gguf, persona, n_batch, looks_up):
    """`n_batch` bounds every llama.cpp batch, the probe's too; with room for no candidate
    beside the pending token, lookup cannot run and the reply is plain decoding's."""
    backend = LlamaBackend(starter_gguf, Runtime(n_ctx=2048, n_batch=n_batch, n_threads=1, seed=42), thread)
    backend.check_cost = CheapChecks()
    try:
        reply = backend.generate(revision(persona), 40, GREEDY)
    finally:
        backend.close()
    assert reply.stats.generated_tokens > 0
    assert (backend.batch_logit_gap == 0.0) is looks_up
    assert (reply.stats.lookup_proposed > 0) is looks_up
