"""`workshop export ROLE --adapter`, for real and small: the tiny trained Educator (conftest's
chain, two LoRA steps on the starter base) published as a LoRA adapter GGUF beside one
base GGUF, validated on base + adapter, and run by the app; a second role trained on the
same base reuses that base file; a base given a template at training carries it and its
trained rows in its base GGUF."""

from __future__ import annotations

import json
import shutil

import pytest

from poetry_workshop.files import sha256_of
from poetry_workshop.inference.gguf_file import read_adapter, read_gguf, require_chat_template
from tests.chain.test_given_template import bare_base  # noqa: F401 - the fixture, used below
from tests.support.cli import run_cli
from tests.support.training import PAIRS, conversation

pytestmark = pytest.mark.xdist_group("trained-educator")


def _published(models):
    bases = sorted(models.glob("*.base-*.gguf"))
    return bases, models / "educator.lora.gguf"


def test_export_as_adapter_validates_on_base_and_adapter_and_the_app_runs_it(chain_copy):
    root, env = chain_copy["root"], chain_copy["env"]
    out = run_cli("export", "educator", "--adapter", env=env, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    models = root / "models"
    bases, adapter = _published(models)
    assert len(bases) == 1 and adapter.is_file(), sorted(p.name for p in models.iterdir())
    base = bases[0]
    assert "a new base" in out.stdout and f"--adapter {adapter}" in out.stdout

    manifest = json.loads((models / "educator.lora.gguf.json").read_text())
    assert manifest["sha256"] == sha256_of(adapter) and manifest["kind"] == "lora adapter"
    assert manifest["base"] == {"file": base.name, "sha256": sha256_of(base)}
    assert manifest["converter"].startswith("llama-cpp-python 0.3.36 convert_lora_to_gguf.py")
    report = manifest["validation"]
    assert report["template_matches"] and not report["problems"] and report["eos_token_id"] == 2
    assert all(any(run["finish_reason"] == "stop" for run in runs) for runs in report["golden"])
    base_info = read_gguf(base, tensors=True)
    require_chat_template(base_info)  # the template travels in the base
    assert base_info.quantization == "Q4_K_M"
    assert read_adapter(adapter, base_info).metadata["adapter.lora.alpha"] == 8.0  # the run's LoRA alpha
    assert not list(models.glob(".export-*")), "a working folder was left behind"

    used = run_cli("models", "use", "educator", str(base), "--adapter", str(adapter), env=env)
    assert used.returncode == 0, used.stderr
    short = root / "short.toml"
    short.write_text("[inference_config.max_tokens]\ncritique = 48\n", encoding="utf-8")
    answered = run_cli("critique", "-", "--config", str(short), stdin="the kettle clicks off\nand the house goes on",
                       env=env, timeout=300)
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert f"Educator: {base.name} + adapter educator.lora.gguf" in answered.stderr
    assert "Critique of draft 1 (Educator)" in answered.stdout

    # The Poet, trained on the same base (here: the same adapter), shares the base file.
    checkpoints = root / "data" / "checkpoints"
    shutil.copytree(checkpoints / "educator" / "adapter", checkpoints / "poet" / "adapter")
    stamp = base.stat().st_mtime_ns
    again = run_cli("export", "poet", "--adapter", env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the published base, reused" in again.stdout
    assert _published(models)[0] == [base] and base.stat().st_mtime_ns == stamp
    poet = json.loads((models / "poet.lora.gguf.json").read_text())
    assert poet["base"] == manifest["base"] and not poet["validation"]["problems"]


def test_adapter_export_on_modal_is_refused_in_one_line(chain_copy):
    out = run_cli("export", "educator", "--adapter", "--backend", "modal", env=chain_copy["env"])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "workshop: error: --adapter exports on this machine, from an adapter trained here: drop --backend modal "
        "(a Modal export publishes a merged model)"]


def test_a_base_given_a_template_carries_it_and_its_rows_into_the_base_gguf(bare_base, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    folder = data / "educator_training"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(conversation(q, a)) + "\n" for q, a in PAIRS * 2))
    (folder / "valid.jsonl").write_text(json.dumps(conversation(*PAIRS[0])) + "\n")
    env = {"POETRY_WORKSHOP_DATA": str(data), "POETRY_WORKSHOP_HOME": str(tmp_path / "home"),
           "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{tmp_path / "models"}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BASE_MODEL": f'"{bare_base}"',
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__BATCH_SIZE": "2",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__GRADIENT_ACCUMULATION": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__MAX_SEQ": "512",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__TRAINING__CHECKPOINT_STEPS": "1",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__R": "4",
           "POETRY_WORKSHOP__EDUCATOR_TRAINING__LORA__ALPHA": "8"}
    trained = run_cli("train", "educator", "--max-steps", "2", env=env, timeout=900)
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = run_cli("export", "educator", "--adapter", env=env, timeout=900)
    assert exported.returncode == 0, exported.stderr[-3000:]
    models = tmp_path / "models"
    bases, adapter = _published(models)
    base_info = read_gguf(bases[0])
    assert "<start_of_turn>" in require_chat_template(base_info)  # the template training gave it
    recipe = json.loads((models / f"{bases[0].name}.json").read_text())["recipe"]
    assert recipe["seated_tokens"] == ["<start_of_turn>", "<end_of_turn>"] and recipe["template_rows_sha256"]
    validation = json.loads((models / "educator.lora.gguf.json").read_text())["validation"]
    assert validation["template_matches"] and not validation["problems"], validation
