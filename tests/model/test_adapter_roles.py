"""Both roles on one base with two LoRA adapters, through the app's engine and the real
`workshop` command: `write`, `critique` and `--batch` run on base + adapter, the adapter is
really applied (a greedy reply changes, and differs per adapter), and a wrong adapter file
gives one clear line and exit 2 with nothing saved.

The adapters are real: taught by a few steps of a plain peft loop on the starter's
trainable form (bench/shared_base.py's `teach`) and converted by the pinned
`convert_lora_to_gguf.py`; the base is the starter GGUF itself. They are built once into
models/.test-adapters/ and reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from poetry_workshop.config.schema import ExportSettings, Runtime, Sampling
from poetry_workshop.inference.inference_thread import InferenceThread
from poetry_workshop.inference.llama_backend import LlamaBackend
from poetry_workshop.pipeline.training.gguf_export import converter_dir
from tests.model.test_bad_input import assert_one_error
from tests.support.cli import ROOT, SMALL_TOKENS_TOML, run_cli

pytestmark = pytest.mark.model

GEMMA = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"
POEM = "the kettle clicks off\nand the house goes on"
PROMPT = [{"role": "system", "content": "You are the Educator."},
          {"role": "user", "content": f"Workshop this draft:\n\n{POEM}\n\nWrite your critique."}]


ADAPTERS_VERSION = "2"  # bump when the taught adapters below change


@pytest.fixture(scope="module")
def adapters(starter_gguf) -> dict[str, Path]:
    """Built once into models/.test-adapters (keyed by the starter's trainable form and the
    versions that make them) and reused by later runs, as the family models are."""
    import hashlib

    import transformers

    from bench.shared_base import adapter_gguf, teach
    from poetry_workshop.pipeline.training.base_model import resolve_base
    from tests.support.families import _built

    converter = converter_dir(ExportSettings().converter_version)
    if not (converter / "convert_lora_to_gguf.py").is_file():
        pytest.fail(f"{converter} lacks convert_lora_to_gguf.py: run `workshop setup --converter` first")
    base_dir = resolve_base(str(starter_gguf))
    key = hashlib.sha256(f"{ADAPTERS_VERSION}:{transformers.__version__}:{base_dir}".encode()).hexdigest()[:10]

    def build(work: Path) -> None:
        for seed, role in enumerate(("educator", "poet")):
            adapter_gguf(converter, teach(base_dir, role, work / role, steps=8, seed=seed), base_dir,
                         work / f"{role}.lora.gguf")

    folder = _built(ROOT / "models" / ".test-adapters" / f"starter-{key}", build)
    return {role: folder / f"{role}.lora.gguf" for role in ("educator", "poet")}


def _config(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "roles.toml"
    path.write_text(SMALL_TOKENS_TOML + "\n[inference_config.models]\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def adapter_config(tmp_path, adapters, starter_gguf) -> Path:
    return _config(tmp_path, f'educator = "{starter_gguf}"\neducator_adapter = "{adapters["educator"]}"\n'
                             f'poet = "{starter_gguf}"\npoet_adapter = "{adapters["poet"]}"\n')


def _greedy(starter_gguf, adapter: Path | None) -> str:
    thread = InferenceThread()
    backend = LlamaBackend(starter_gguf, Runtime(n_ctx=1024, n_threads=2, seed=7), thread, adapter=adapter)
    try:
        return backend.generate(PROMPT, 32, Sampling(temperature=0.0)).text
    finally:
        backend.close()
        thread.close()


def test_the_adapter_is_applied_and_each_role_gets_its_own(starter_gguf, adapters):
    plain = _greedy(starter_gguf, None)
    educator = _greedy(starter_gguf, adapters["educator"])
    poet = _greedy(starter_gguf, adapters["poet"])
    assert educator and poet
    assert len({plain, educator, poet}) == 3, (plain, educator, poet)


def test_write_runs_a_session_with_both_roles_on_one_base_and_two_adapters(adapter_config, starter_gguf):
    result = run_cli("write", "a short poem about rain on a tin roof", "--config", str(adapter_config), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Educator: {starter_gguf.name} + adapter educator.lora.gguf" in result.stderr
    assert f"Poet: {starter_gguf.name} + adapter poet.lora.gguf" in result.stderr
    assert "starter model" not in result.stderr  # taught roles are not the starter as shipped
    assert "(Educator)" in result.stdout and "session" in result.stderr + result.stdout


def test_critique_and_batch_run_on_adapter_roles(adapter_config, tmp_path):
    critique = run_cli("critique", "-", "--config", str(adapter_config), stdin=POEM, timeout=600)
    assert critique.returncode == 0, critique.stderr[-3000:]
    assert "Critique of draft 1 (Educator)" in critique.stdout
    batch = tmp_path / "one.txt"
    batch.write_text("a poem about bread rising at four in the morning\n", encoding="utf-8")
    done = run_cli("--batch", str(batch), "--rounds", "1", "--out", str(tmp_path / "out"),
                   "--config", str(adapter_config), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"status": "ok"' in done.stdout


def test_models_shows_each_role_with_its_adapter(adapter_config, adapters):
    listed = run_cli("models", "--config", str(adapter_config))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert any(line.strip().startswith(f"+ adapter {adapters['educator']}") and "rank 8, alpha 16" in line
               for line in lines), listed.stdout


def test_models_use_sets_base_and_adapter_and_a_new_model_drops_it(adapters, starter_gguf, workshop_home):
    used = run_cli("models", "use", "poet", str(starter_gguf), "--adapter", str(adapters["poet"]),
                   env={"POETRY_WORKSHOP_HOME": str(workshop_home)})
    assert used.returncode == 0, used.stderr
    saved = (workshop_home / "config.toml").read_text(encoding="utf-8")
    assert f'poet_adapter = "{adapters["poet"]}"' in saved
    again = run_cli("models", "use", "poet", str(starter_gguf), env={"POETRY_WORKSHOP_HOME": str(workshop_home)})
    assert again.returncode == 0, again.stderr
    assert 'poet_adapter = ""' in (workshop_home / "config.toml").read_text(encoding="utf-8")


# ------------------------------------------------------------------------ bad adapters


def test_an_adapter_that_is_not_a_gguf_is_one_line(tmp_path, starter_gguf):
    notes = tmp_path / "notes.lora.gguf"
    notes.write_text("these are not weights\n", encoding="utf-8")
    config = _config(tmp_path, f'educator_adapter = "{notes}"\n')
    result = run_cli("critique", "-", "--config", str(config), stdin=POEM)
    assert_one_error(result, str(notes), "not a GGUF file", "--adapter")


def test_a_full_model_given_as_an_adapter_is_one_line(tmp_path, starter_gguf):
    config = _config(tmp_path, f'poet_adapter = "{starter_gguf}"\n')
    result = run_cli("write", "a poem about rain", "--config", str(config))
    assert_one_error(result, str(starter_gguf), "a full model", "not a LoRA adapter", "workshop models use")


def test_an_adapter_for_another_architecture_is_one_line(tmp_path, adapters):
    if not GEMMA.is_file():
        pytest.fail(f"{GEMMA} is missing: run `bash scripts/setup.sh --test` first")
    config = _config(tmp_path, f'educator = "{GEMMA}"\neducator_adapter = "{adapters["educator"]}"\n')
    result = run_cli("critique", "-", "--config", str(config), stdin=POEM)
    assert_one_error(result, str(adapters["educator"]), "llama architecture", f"{GEMMA.name} is gemma3")


def test_models_use_refuses_a_wrong_adapter_and_saves_nothing(tmp_path, starter_gguf, workshop_home):
    notes = tmp_path / "notes.gguf"
    notes.write_text("not weights", encoding="utf-8")
    result = run_cli("models", "use", "educator", str(starter_gguf), "--adapter", str(notes),
                     env={"POETRY_WORKSHOP_HOME": str(workshop_home)})
    assert_one_error(result, str(notes), "not a GGUF file")
    assert not (workshop_home / "config.toml").exists()
