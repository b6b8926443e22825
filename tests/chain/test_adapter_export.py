"""`workshop export ROLE --adapter`, for real and small: the tiny trained Educator (conftest's
chain, two LoRA steps on the starter base) published as a LoRA adapter GGUF beside one
base GGUF, validated on base + adapter, and run by the app; a second role trained on the
same base reuses that base file; a converter folder from before adapters is fetched again."""

from __future__ import annotations

import json
import shutil

import pytest

from poetry_workshop.files import sha256_of
from poetry_workshop.inference.gguf_file import read_adapter, read_gguf, require_chat_template
from tests.support.cli import run_cli

pytestmark = pytest.mark.xdist_group("trained-educator")


def _published(models):
    bases = sorted(models.glob("*.base-*.gguf"))
    return bases, models / "educator.lora.gguf"


@pytest.fixture(scope="module")
def published(chain, tmp_path_factory):
    """The shared trained Educator's run copied, then exported with --adapter once."""
    assert chain["train"].returncode == 0, chain["train"].stderr[-2000:]
    root = tmp_path_factory.mktemp("adapter-export") / "chain"
    shutil.copytree(chain["root"], root, symlinks=True)
    env = {**chain["env"], "POETRY_WORKSHOP_DATA": str(root / "data"), "POETRY_WORKSHOP_HOME": str(root / "home"),
           "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{root / "models"}"'}
    out = run_cli("export", "educator", "--adapter", env=env, timeout=900)
    return {"root": root, "env": env, "export": out}


def test_export_as_adapter_validates_on_base_and_adapter(published):
    out, models = published["export"], published["root"] / "models"
    assert out.returncode == 0, out.stderr[-3000:]
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


def test_the_app_runs_the_exported_base_and_adapter(published):
    root, env = published["root"], published["env"]
    bases, adapter = _published(root / "models")
    used = run_cli("models", "use", "educator", str(bases[0]), "--adapter", str(adapter), env=env)
    assert used.returncode == 0, used.stderr
    short = root / "short.toml"
    short.write_text("[inference_config.max_tokens]\ncritique = 48\n", encoding="utf-8")
    answered = run_cli("critique", "-", "--config", str(short), stdin="the kettle clicks off\nand the house goes on",
                       env=env, timeout=300)
    assert answered.returncode == 0, answered.stderr[-2000:]
    assert f"Educator: {bases[0].name} + adapter educator.lora.gguf" in answered.stderr
    assert "Critique of draft 1 (Educator)" in answered.stdout


def test_a_second_role_on_the_same_base_reuses_the_base_file(published):
    root, env, models = published["root"], published["env"], published["root"] / "models"
    (base,), _ = _published(models)
    # The Poet, trained on the same base (here: the same adapter), shares the base file.
    checkpoints = root / "data" / "checkpoints"
    shutil.copytree(checkpoints / "educator" / "adapter", checkpoints / "poet" / "adapter")
    stamp = base.stat().st_mtime_ns
    again = run_cli("export", "poet", "--adapter", env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the published base, reused" in again.stdout
    assert _published(models)[0] == [base] and base.stat().st_mtime_ns == stamp
    educator = json.loads((models / "educator.lora.gguf.json").read_text())
    poet = json.loads((models / "poet.lora.gguf.json").read_text())
    assert poet["base"] == educator["base"] and not poet["validation"]["problems"]


def test_adapter_export_on_modal_is_refused_in_one_line(chain_copy):
    out = run_cli("export", "educator", "--adapter", "--backend", "modal", env=chain_copy["env"])
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == [
        "workshop: error: --adapter exports on this machine, from an adapter trained here: drop --backend modal "
        "(a Modal export publishes a merged model)"]


def test_a_converter_unpacked_before_adapters_is_fetched_again(tmp_path, monkeypatch):
    """A converter folder from before `convert_lora_to_gguf.py` was unpacked lacks it; the
    pinned archive (pip's download, stood in for by a local archive: tests are offline) is
    unpacked again, checked by its sha256, and a complete folder is not fetched twice."""
    import io
    import subprocess
    import tarfile

    from poetry_workshop import locations
    from poetry_workshop.pipeline.training import gguf_export

    version = "9.9.9"
    archive = tmp_path / f"llama_cpp_python-{version}.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/__init__.py",
                     "gguf-py/gguf/__init__.py", "models/ggml-vocab-llama-bpe.gguf", "README.md"):
            data = f"# {name}\n".encode()
            member = tarfile.TarInfo(f"llama_cpp_python-{version}/vendor/llama.cpp/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    downloads = []

    def pip_download(cmd, **kwargs):
        downloads.append(cmd)
        shutil.copy(archive, cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(locations, "models_dir", lambda: tmp_path / "models")
    monkeypatch.setattr(gguf_export.subprocess, "run", pip_download)
    old = gguf_export.converter_dir(version)
    (old / "models").mkdir(parents=True)
    (old / "convert_hf_to_gguf.py").write_text("# older\n")
    (old / "models" / "ggml-vocab-llama-bpe.gguf").write_text("# older\n")

    folder = gguf_export.fetch_converter(version, sha256_of(archive))
    assert folder == old and len(downloads) == 1
    assert (folder / "convert_lora_to_gguf.py").read_text() == "# convert_lora_to_gguf.py\n"
    assert (folder / "convert_hf_to_gguf.py").read_text() == "# convert_hf_to_gguf.py\n"
    assert not (folder / "README.md").exists()  # only the converter's members are unpacked
    gguf_export.fetch_converter(version, sha256_of(archive))
    assert len(downloads) == 1
