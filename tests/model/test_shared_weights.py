"""Two roles on one GGUF file share its weights on the CPU too: llama.cpp's repacking of
Q4_0 and K-quant weights (a private copy per loaded model) is off where the engine sees both
roles map one file, and on where each role has its own.

The model is the starter requantized to Q4_0 by llama.cpp's own quantizer: the type the
CPU repacks most of (57 of its 85 MB here). Memory is each configuration's proportional set
size in a fresh process, from /proc/self/smaps_rollup."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.inference.engine import Engine
from poetry_workshop.inference.model_choice import choose_models
from poetry_workshop.pipeline.training.gguf_export import quantize
from poetry_workshop.workshop.persona import load_persona
from tests.support.cli import ROOT

pytestmark = pytest.mark.model

# Loads two roles on one file, generates a few tokens with each, prints the anonymous memory
# the two added (repacked weights are anonymous; the mapped file is not).
MEASURE = """
import json, sys
from pathlib import Path
import llama_cpp
from bench.shared_base import pss_kib
from poetry_workshop.config.schema import Runtime, Sampling
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import LlamaBackend

path, shared = Path(sys.argv[1]), sys.argv[2] == "shared"
thread = InferenceThread()
before = pss_kib()["Pss_Anon"]
roles = [LlamaBackend(path, Runtime(n_ctx=512, n_threads=1), thread, shared_weights=shared) for _ in range(2)]
for backend in roles:
    backend.generate([{"role": "user", "content": "Say hello."}], 4, Sampling(temperature=0.0))
print(json.dumps({"anon_mib": (pss_kib()["Pss_Anon"] - before) // 1024}))
"""


@pytest.fixture(scope="module")
def q4_0_gguf(starter_gguf, tmp_path_factory):
    out = tmp_path_factory.mktemp("q4_0") / "starter.Q4_0.gguf"
    quantize(starter_gguf, out, "Q4_0", requantize=True)
    return out


def anonymous_mib(gguf, how: str) -> int:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(gguf), how], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])["anon_mib"]


def test_two_roles_on_one_file_do_not_each_copy_its_weights(q4_0_gguf):
    shared = anonymous_mib(q4_0_gguf, "shared")
    private = anonymous_mib(q4_0_gguf, "private")
    # Each private load adds a ~57 MB repacked copy; KV caches and buffers are alike.
    assert private - shared >= 80, (shared, private)


def test_the_engine_shares_weights_only_when_both_roles_map_one_file(q4_0_gguf, starter_gguf):
    settings = load_settings(environ={})
    choices = choose_models(settings)
    one_file = {role: replace(choice, path=q4_0_gguf) for role, choice in choices.items()}
    two_files = {**one_file, "poet": replace(one_file["poet"], path=starter_gguf)}
    for picked, expected in ((one_file, True), (two_files, False)):
        engine = Engine.from_settings(settings, load_persona(), picked)
        try:
            assert engine.educator.backend.shared_weights is expected
            assert engine.poet.backend.shared_weights is expected
            engine.load()
            llm = engine.educator.backend._llm
            assert llm.model_params.use_extra_bufts is (not expected)  # what llama.cpp was given
        finally:
            engine.close()
    # A role switched onto the file the other role maps shares it from then on.
    engine = Engine.from_settings(settings, load_persona(), two_files)
    try:
        engine.swap(replace(two_files["poet"], path=q4_0_gguf))
        assert engine.poet.backend.shared_weights is True
    finally:
        engine.close()
