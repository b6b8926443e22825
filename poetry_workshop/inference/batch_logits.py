"""Whether a batch of positions gets the logits one-token decoding gets, for this model on
this machine: the condition under which prompt lookup keeps plain decoding's text.

Which kernels llama.cpp runs depends on the weights' types, the backend, the batch size and
the threads, so no table can say it. Measured on this project's CPU (one thread, flash
attention on), Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL weights give bit-identical logits
either way, while K-quants do not: Q4_K_M (the export's own format) and Q6_K differed by up
to 1.4 in a logit, enough to change a sampled reply. So the backend asks the model itself
once: it evaluates a few tokens of verse in batches of the sizes lookup uses and one token
at a time, and compares. A gap within `TOLERANCE` is float rounding in the last bits (a GPU
adding in another order), which can change a token only at a near-tie.

What a short probe cannot see is the one difference that grows with the context: on the
CPU with several threads, one-token flash attention splits a long KV cache between the
threads (from about 512 tokens), so there lookup stays off whatever the probe says."""

from __future__ import annotations

# Plain lines of verse: the kind of tokens a reply is made of, in the model's own tokenizer.
PROBE_TEXT = (
    "The kettle clicks off and the house goes on,\n"
    "the stair rail cold under a hand at four,\n"
    "bread on the tray, the radio low, the dog asleep."
)
PREFIX = 8  # tokens evaluated first, so the checked positions attend to some context
# Batch sizes a candidate check uses: two (one candidate) and the most lookup checks at once
# (the pending token and `MAX_CANDIDATES`); kernels are picked by shape, so both are tried.
BATCHES = (2, 11)
# Logit differences at or below this are rounding noise, not another kernel's arithmetic.
TOLERANCE = 1e-3


def batch_logit_gap(llm) -> float:
    """The largest |logit difference| between batched and one-token evaluation of the same
    positions after the same prefix. Runs on a loaded `Llama` before its first generation
    and leaves its KV cache empty."""
    import llama_cpp
    import numpy as np

    sizes = sorted({min(size, llm.n_batch) for size in BATCHES})  # each within one llama.cpp batch
    if sizes[-1] < 2:
        return float("inf")  # no room for a candidate beside the pending token: lookup cannot run
    tokens = llm.tokenize(PROBE_TEXT.encode("utf-8"), add_bos=True, special=False)[: PREFIX + sizes[-1]]
    checked = tokens[PREFIX:]
    n_vocab = llm.n_vocab()

    def decode(chunk: list[int], n_past: int) -> list:
        llm._ctx.kv_cache_seq_rm(-1, n_past, -1)
        llm._batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
        llm._ctx.decode(llm._batch)
        return [np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, i), shape=(n_vocab,)).copy()
                for i in range(len(chunk))]

    try:
        for start in range(0, PREFIX, llm.n_batch):
            decode(tokens[start : min(PREFIX, start + llm.n_batch)], start)
        batched = {size: decode(checked[:size], PREFIX) for size in sizes}
        single = [decode([token], PREFIX + i)[0] for i, token in enumerate(checked)]
        return max(float(np.abs(row - single[i]).max()) for rows in batched.values() for i, row in enumerate(rows))
    finally:
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = 0
