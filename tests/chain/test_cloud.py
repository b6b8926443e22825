"""The Modal backend without Modal's servers: the app module's declared functions, the
training body run in-process through `.local()`, the checksum rules of upload and download
(on folder volumes, which is how a Modal container sees its volumes), and the one-line
answers when Modal or the Hugging Face token is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from poetry_workshop.config.loader import load_settings, override_layers
from poetry_workshop.errors import ConfigError, WorkshopError
from poetry_workshop.files import sha256_of
from poetry_workshop.pipeline.build.cloud_sync import FolderVolume, download, set_checksums, upload, verify_upload
from tests.support.cli import ROOT, STARTER, run_cli

NO_MODAL = {"MODAL_TOKEN_ID": "", "MODAL_TOKEN_SECRET": "", "MODAL_CONFIG_PATH": "/nonexistent/.modal.toml"}


def write_set(data, role="educator", answers=("A turn.", "A pause.")) -> None:
    folder = data / f"{role}_training"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"messages": [{"role": "system", "content": "You are the Educator."},
                                      {"role": "user", "content": f"Question {i}?"},
                                      {"role": "assistant", "content": a}]}) for i, a in enumerate(answers)]
    (folder / "train.jsonl").write_text("\n".join(lines * 2) + "\n", encoding="utf-8")
    (folder / "valid.jsonl").write_text(lines[0] + "\n", encoding="utf-8")


class CountingVolume(FolderVolume):
    def __init__(self, root):
        super().__init__(root, "poetry-data")
        self.sent: list[list[str]] = []

    def put(self, files):
        self.sent.append(sorted(files))
        super().put(files)


# ------------------------------------------------------------------------ the app module


def test_the_app_module_imports_without_modal_credentials(tmp_path):
    env = {**os.environ, **NO_MODAL, "HOME": str(tmp_path)}
    code = ("import poetry_workshop.pipeline.build.modal_app as m; "
            "print(sorted(m.app.registered_functions) if hasattr(m.app, 'registered_functions') else '')")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "export_role" in done.stdout and "train_role" in done.stdout


def test_the_functions_ask_for_the_configured_gpu_volumes_secret_timeout_and_retries():
    from poetry_workshop.pipeline.build import modal_app as m
    modal_cfg = load_settings().export.modal
    spec = m.train_role._spec_
    assert spec.gpus == [modal_cfg.gpu, *modal_cfg.gpu_fallbacks] == ["A100-80GB", "H100", "A100-40GB"]
    assert set(spec.volumes) == {m.DATA_MOUNT, m.CHECKPOINT_MOUNT}
    assert [repr(v) for v in spec.volumes.values()] == ["modal.Volume.from_name('poetry-data')",
                                                        "modal.Volume.from_name('poetry-checkpoints')"]
    assert [repr(s) for s in spec.secrets] == ["modal.Secret.from_name('huggingface-secret')"]
    export_spec = m.export_role._spec_
    assert [repr(v) for v in export_spec.volumes.values()] == ["modal.Volume.from_name('poetry-checkpoints')",
                                                               "modal.Volume.from_name('poetry-gguf')"]
    assert [repr(s) for s in export_spec.secrets] == ["modal.Secret.from_name('huggingface-secret')"]
    for options in (m.TRAIN_OPTIONS, m.EXPORT_OPTIONS):
        assert options["timeout"] == modal_cfg.timeout_s == 21600
        assert options["retries"].max_retries == modal_cfg.retries == 2
    # The container finds its volumes through the same variables the local backend reads.
    assert m.CONTAINER_ENV["POETRY_WORKSHOP_DATA"] == m.DATA_MOUNT
    assert m.CONTAINER_ENV["POETRY_WORKSHOP_CHECKPOINTS"] == m.CHECKPOINT_MOUNT
    assert all("==" in p for p in m.IMAGE_PACKAGES if not p.startswith("platformdirs"))


@pytest.mark.model
def test_the_training_body_runs_through_local_and_checks_the_uploaded_data(tmp_path, monkeypatch, starter_gguf):
    from poetry_workshop.pipeline.build import modal_app as m
    data, checkpoints = tmp_path / "data", tmp_path / "checkpoints"
    monkeypatch.setenv("POETRY_WORKSHOP_CHECKPOINTS", str(checkpoints))
    write_set(data)
    layers = [("test", {"educator_training": {
        "training": {"base_model": str(STARTER), "batch_size": 2, "gradient_accumulation": 1, "max_seq": 256,
                     "checkpoint_steps": 1},
        "lora": {"r": 4, "alpha": 8}}})]
    settings = load_settings(extra=layers)
    upload(FolderVolume(data), ["educator"], settings)  # the data folder plays the mounted volume
    expected = set_checksums("educator", settings)

    result = m.train_role.local("educator", override_layers(None, {}, layers), None, 1, expected)
    assert result["steps"] == 1 and result["examples"] == 4
    assert (checkpoints / "educator" / "checkpoint-1" / "trainer_state.json").is_file()
    assert (checkpoints / "educator" / "adapter" / "workshop_training.json").is_file()

    # The set changes after upload: the cloud trainer refuses it rather than train on it.
    (data / "educator_training" / "train.jsonl").write_text(
        (data / "educator_training" / "valid.jsonl").read_text(), encoding="utf-8")
    with pytest.raises(ConfigError, match="does not match its upload checksum"):
        m.train_role.local("educator", layers, None, 1, expected)


def test_a_hub_base_without_hf_token_stops_before_loading_and_never_prints_a_token(tmp_path, monkeypatch, capsys):
    from poetry_workshop.pipeline.build import modal_app as m
    monkeypatch.delenv("HF_TOKEN", raising=False)
    write_set(tmp_path / "data")
    with pytest.raises(ConfigError, match="modal secret create huggingface-secret HF_TOKEN=") as err:
        m.train_role.local("educator", [], None, 1, None)
    assert "meta-llama/Llama-3.1-8B-Instruct" in str(err.value)
    # With a token present the check passes and the token appears nowhere.
    monkeypatch.setenv("HF_TOKEN", "hf_DoNotPrintThisValue")
    with pytest.raises(ConfigError, match="no educator training set"):
        m.train_role.local("educator", [], None, 1, None)
    out = capsys.readouterr()
    assert "hf_DoNotPrintThisValue" not in out.out + out.err


def test_modal_commands_without_credentials_say_how_to_set_up(tmp_path):
    write_set(tmp_path / "data")
    env = {**NO_MODAL, "HOME": str(tmp_path), "POETRY_WORKSHOP_DATA": str(tmp_path / "data")}
    for args in (["train", "educator", "--backend", "modal"], ["export", "educator", "--backend", "modal"],
                 ["cloud", "upload"], ["cloud", "download", "poet"],
                 ["pipeline", "--train-only", "--backend", "modal"]):
        done = run_cli(*args, env=env, timeout=120)
        assert done.returncode == 2, (args, done.stderr[-1500:])
        assert "run `modal setup`" in done.stderr and "Traceback" not in done.stderr, args


# ------------------------------------------------------------------------ upload and download


def test_upload_sends_each_changed_file_once_and_names_it_in_upload_json_last(tmp_path):
    data, volume_root = tmp_path / "data", tmp_path / "volume"
    write_set(data)
    settings = load_settings()
    volume = CountingVolume(volume_root)

    first = upload(volume, ["educator"], settings)
    assert sorted(first.sent) == ["educator_training/train.jsonl", "educator_training/valid.jsonl"]
    assert volume.sent == [sorted(first.sent), ["upload.json"]]  # the manifest after the files
    again = upload(volume, ["educator"], settings)
    assert again.sent == [] and len(volume.sent) == 2  # nothing sent twice

    (data / "educator_training" / "valid.jsonl").write_text("{}\n", encoding="utf-8")
    third = upload(volume, ["educator"], settings)
    assert third.sent == ["educator_training/valid.jsonl"]
    manifest = json.loads((volume_root / "upload.json").read_text())["files"]
    assert manifest["educator_training/valid.jsonl"] == sha256_of(data / "educator_training" / "valid.jsonl")
    verify_upload(volume_root, "educator", set_checksums("educator", settings))


def test_verify_refuses_a_set_that_differs_from_the_callers(tmp_path):
    data, volume_root = tmp_path / "data", tmp_path / "volume"
    write_set(data)
    settings = load_settings()
    upload(FolderVolume(volume_root), ["educator"], settings)
    write_set(data, answers=("Another turn.", "Another pause."))  # changed here, not uploaded
    with pytest.raises(ConfigError, match="differs from yours .*run `workshop cloud upload`"):
        verify_upload(volume_root, "educator", set_checksums("educator", settings))
    with pytest.raises(ConfigError, match="no poet training set"):
        verify_upload(volume_root, "poet", None)


def test_upload_without_a_training_set_says_to_prepare(tmp_path):
    with pytest.raises(ConfigError, match="workshop data prepare"):
        upload(FolderVolume(tmp_path / "volume"), ["poet"], load_settings())


def _publish(root, role, payload: bytes, digest: str | None = None):
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{role}.Q4_K_M.gguf").write_bytes(payload)
    manifest = {"role": role, "sha256": digest or __import__("hashlib").sha256(payload).hexdigest()}
    (root / f"{role}.Q4_K_M.gguf.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_download_fetches_only_a_model_whose_checksum_changed(tmp_path, monkeypatch):
    models, volume_root = tmp_path / "models", tmp_path / "gguf"
    monkeypatch.setenv("POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR", f'"{models}"')
    settings = load_settings()
    volume = FolderVolume(volume_root, "poetry-gguf")
    _publish(volume_root, "educator", b"GGUF first")
    got = download(volume, "educator", settings)
    assert got.fetched and got.path.read_bytes() == b"GGUF first"
    assert json.loads((models / "educator.Q4_K_M.gguf.json").read_text())["sha256"] == sha256_of(got.path)
    assert not download(volume, "educator", settings).fetched
    _publish(volume_root, "educator", b"GGUF second")
    assert download(volume, "educator", settings).fetched and got.path.read_bytes() == b"GGUF second"


def test_a_download_that_does_not_match_its_manifest_replaces_nothing(tmp_path, monkeypatch):
    models, volume_root = tmp_path / "models", tmp_path / "gguf"
    monkeypatch.setenv("POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR", f'"{models}"')
    settings = load_settings()
    volume = FolderVolume(volume_root, "poetry-gguf")
    _publish(volume_root, "poet", b"GGUF good")
    download(volume, "poet", settings)
    _publish(volume_root, "poet", b"GGUF torn", digest="0" * 64)
    with pytest.raises(WorkshopError, match="does not match its manifest's sha256; nothing was replaced"):
        download(volume, "poet", settings)
    assert (models / "poet.Q4_K_M.gguf").read_bytes() == b"GGUF good"
    assert sorted(p.name for p in models.iterdir()) == ["poet.Q4_K_M.gguf", "poet.Q4_K_M.gguf.json"]
    with pytest.raises(ConfigError, match="no exported educator model"):
        download(volume, "educator", settings)


def test_a_validation_set_gone_here_is_emptied_on_the_volume_too(tmp_path):
    data, volume_root = tmp_path / "data", tmp_path / "volume"
    write_set(data)
    settings = load_settings()
    upload(FolderVolume(volume_root), ["educator"], settings)
    (data / "educator_training" / "valid.jsonl").unlink()
    again = upload(FolderVolume(volume_root), ["educator"], settings)
    assert again.sent == ["educator_training/valid.jsonl"]
    assert (volume_root / "educator_training" / "valid.jsonl").read_bytes() == b""  # the old one cannot be trained on
    verify_upload(volume_root, "educator", set_checksums("educator", settings))
    assert upload(FolderVolume(volume_root), ["educator"], settings).sent == []
