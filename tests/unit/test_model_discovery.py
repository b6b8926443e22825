"""Discovery's rules on small GGUF headers: what is listed, under which name, and what is not."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.errors import WorkshopError
from poetry_workshop.inference.catalogue import find_entry, hub_file
from poetry_workshop.inference.gguf_file import read_gguf
from poetry_workshop.inference.memory_fit import memory_fit
from poetry_workshop.inference.model_discovery import discover, find_by_name, in_hf_cache, in_lmstudio, in_ollama
from tests.support.hub import isolate_stores, tiny_thinking_gguf


@pytest.fixture
def stores(tmp_path, monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP_ROOT", str(tmp_path / "project"))
    return isolate_stores(monkeypatch, tmp_path)


def test_projectors_and_later_shards_are_left_out(stores):
    folder = stores / "lmstudio" / "someone" / "Model-GGUF"
    for name in ("Model-Q4_K_M.gguf", "mmproj-Model-F16.gguf", "Big-Q4_K_M-00001-of-00002.gguf",
                 "Big-Q4_K_M-00002-of-00002.gguf", "notes.txt"):
        tiny_thinking_gguf(folder / name)
    names = [m.name for m in in_lmstudio()]
    assert names == ["someone/Model-GGUF/Big-Q4_K_M-00001-of-00002.gguf", "someone/Model-GGUF/Model-Q4_K_M.gguf"]


def test_the_hf_cache_names_owner_repo_file_once_across_snapshots(stores):
    repo = stores / "hf-cache" / "models--Qwen--Qwen3-8B-GGUF" / "snapshots"
    tiny_thinking_gguf(repo / "old" / "Qwen3-8B-Q4_K_M.gguf")
    tiny_thinking_gguf(repo / "new" / "Qwen3-8B-Q4_K_M.gguf")
    found = list(in_hf_cache())
    assert [m.name for m in found] == ["Qwen/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf"]
    assert found[0].source == "HF cache"


def test_ollama_manifests_resolve_to_blobs_and_name_their_namespace(stores):
    ollama = stores / "ollama"
    digest = "1" * 64
    tiny_thinking_gguf(ollama / "blobs" / f"sha256-{digest}")
    layer = {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{digest}"}
    for manifest in ("registry.ollama.ai/library/qwen3/8b", "hf.co/unsloth/Qwen3-8B-GGUF/Q4_K_M"):
        path = ollama / "manifests" / manifest
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"layers": [layer]}), encoding="utf-8")
    broken = ollama / "manifests" / "registry.ollama.ai" / "library" / "broken" / "latest"
    broken.parent.mkdir(parents=True)
    broken.write_text("{not json", encoding="utf-8")
    missing = ollama / "manifests" / "registry.ollama.ai" / "library" / "gone" / "latest"
    missing.parent.mkdir(parents=True)
    missing.write_text(json.dumps({"layers": [{**layer, "digest": "sha256:" + "2" * 64}]}), encoding="utf-8")
    assert sorted(m.name for m in in_ollama()) == ["hf.co/unsloth/Qwen3-8B-GGUF:Q4_K_M", "qwen3:8b"]
    # the same blob under two names is one model in the full list
    assert [m.source for m in discover()] == ["Ollama"]


def test_find_by_name_takes_the_full_name_or_an_unambiguous_file_name(stores):
    tiny_thinking_gguf(stores / "lmstudio" / "a" / "A-GGUF" / "Same.gguf")
    tiny_thinking_gguf(stores / "lmstudio" / "b" / "B-GGUF" / "Same.gguf")
    tiny_thinking_gguf(stores / "lmstudio" / "b" / "B-GGUF" / "Only.gguf")
    assert find_by_name("Only.gguf").name == "b/B-GGUF/Only.gguf"
    assert find_by_name("a/A-GGUF/Same.gguf").path.parent.name == "A-GGUF"
    with pytest.raises(WorkshopError, match="names 2 models"):
        find_by_name("Same.gguf")
    with pytest.raises(WorkshopError, match="workshop models get"):
        find_by_name("nothing.gguf")


def test_hub_references_and_the_thinking_template_estimate(tmp_path):
    entry = hub_file("Qwen/Qwen3-8B-GGUF/sub/Qwen3-8B-Q4_K_M.gguf")
    assert (entry.repo, entry.filename, entry.quantization) == ("Qwen/Qwen3-8B-GGUF", "sub/Qwen3-8B-Q4_K_M.gguf",
                                                                  "Q4_K_M")
    assert find_entry("QWEN3-8B").memory_class == "8 GB" and find_entry("qwen3-14b").memory_class == "24 GB+"
    with pytest.raises(WorkshopError, match="not in the catalogue"):
        hub_file("qwen")
    info = read_gguf(tiny_thinking_gguf(tmp_path / "t.gguf"))
    assert info.thinking.thinks and info.context_length == 32768
    # 4 layers x 2 KV heads x (64 + 64) x 2 bytes a token
    assert memory_fit(info, 1000, available=2**40).kv_cache == 1000 * 4 * 2 * 128 * 2
