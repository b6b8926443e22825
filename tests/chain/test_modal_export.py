"""The Modal export without Modal's servers: the image builds llama.cpp for any CPU, the
export function asks for the configured memory and works on the container's own disk, and
the export code writes its scratch under the work folder it is given and publishes only the
GGUF and its manifest into the output folder (the volume), under a temporary name then a
rename when the two are on different file systems."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path, PurePosixPath

import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.training import gguf_export
from poetry_workshop.pipeline.training.memory_plan import GIB, MemoryLimit
from tests.support.cli import STARTER


def dockerfile(image) -> list[str]:
    """The Dockerfile commands of every layer of a modal.Image, oldest first. Modal keeps
    each layer's commands in a closure of its loader; this reads them as the build would."""
    from modal._image import _Image
    from modal._utils.async_utils import synchronizer

    commands, layer = [], synchronizer._translate_in(image)
    while layer is not None:
        cells = dict(zip(layer._load.__code__.co_freevars, (c.cell_contents for c in layer._load.__closure__ or ())))
        if cells.get("dockerfile_function"):
            commands = cells["dockerfile_function"]("2024.10").commands + commands
        bases = [d for d in layer._deps() if isinstance(d, _Image)]
        layer = bases[0] if bases else None
    return commands


def test_the_image_compiles_llama_cpp_for_any_cpu_not_the_builders():
    from poetry_workshop.pipeline.build import modal_app as m

    commands = dockerfile(m.image)
    env = commands.index("ENV CMAKE_ARGS=-DGGML_NATIVE=OFF")
    install = next(i for i, c in enumerate(commands) if c.startswith("RUN python -m pip install") and
                   "llama-cpp-python==0.3.36" in c)
    assert env < install  # set before pip builds llama.cpp, and kept for any later build


def test_the_export_function_asks_for_the_configured_memory_and_cpus():
    from poetry_workshop.pipeline.build import modal_app as m

    modal = load_settings().export.modal
    assert (modal.export_memory_mib, modal.export_cpu) == (65536, 8.0)
    spec = m.export_role._spec_
    assert spec.memory == m.EXPORT_OPTIONS["memory"] == modal.export_memory_mib
    assert spec.cpu == m.EXPORT_OPTIONS["cpu"] == modal.export_cpu and spec.gpus is None


def test_the_export_body_works_on_the_containers_disk_and_plans_with_the_functions_memory(monkeypatch):
    from poetry_workshop.pipeline.build import modal_app as m

    seen = {}

    def fake_export(role, settings, log, work_root=None, memory_limit=None):
        seen.update(role=role, output_dir=settings.export.export.output_dir, work_root=work_root, limit=memory_limit)
        return gguf_export.ExportResult(Path(m.GGUF_MOUNT) / "educator.Q4_K_M.gguf", Path("m.json"), {"problems": []})

    monkeypatch.setattr(gguf_export, "export", fake_export)
    monkeypatch.setattr(m.modal, "is_local", lambda: False)  # as the body runs in the container
    commits = []
    monkeypatch.setattr(m, "_commit", commits.append)
    layers = [("test", {"educator_training": {"training": {"base_model": str(STARTER)}}})]
    result = m.export_role.local("educator", layers)
    assert result["gguf"] == "educator.Q4_K_M.gguf" and commits == [m.gguf_volume]
    assert seen["output_dir"] == m.GGUF_MOUNT  # only the published files go to the volume
    mounts = [PurePosixPath(p) for p in (*m.export_role._spec_.volumes, *m.train_role._spec_.volumes)]
    assert {str(p) for p in mounts} == {m.DATA_MOUNT, m.CHECKPOINT_MOUNT, m.GGUF_MOUNT}
    work = PurePosixPath(seen["work_root"])
    assert not any(work == p or work.is_relative_to(p) for p in mounts)
    assert str(work) == tempfile.gettempdir()
    assert seen["limit"] == MemoryLimit(65536 * 2**20, "the Modal export function's memory")


# ------------------------------------------------------------------------ the export code


@pytest.fixture
def fake_chain(tmp_path, monkeypatch):
    """An adapter on the starter base, and merge, convert, quantize and validate replaced by
    steps that write small files and note where they wrote them."""
    checkpoints = tmp_path / "checkpoints"
    monkeypatch.setenv("POETRY_WORKSHOP_CHECKPOINTS", str(checkpoints))
    adapter = checkpoints / "educator" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 4, "target_modules": ["q_proj", "v_proj"]}))
    (adapter / "workshop_training.json").write_text(json.dumps({"base_model": str(STARTER), "data_hash": "d",
                                                                "steps": 2}))
    written: list[Path] = []

    def merge(base, adapter, out, log):
        out.mkdir()
        (out / "model.safetensors").write_bytes(b"merged")
        written.append(out)
        return {"end_of_turn_id": 2, "end_of_turn": "<|im_end|>"}

    def convert(converter, merged, out):
        out.write_bytes(b"GGUF f16")
        written.append(out)

    def quantize(source, out, kind):
        out.write_bytes(b"GGUF q4")
        written.append(out)

    monkeypatch.setattr(gguf_export, "merge", merge)
    monkeypatch.setattr(gguf_export, "fetch_converter", lambda version, sha, log: tmp_path)
    monkeypatch.setattr(gguf_export, "convert", convert)
    monkeypatch.setattr(gguf_export, "quantize", quantize)
    monkeypatch.setattr(gguf_export, "validate", lambda *a, **k: {"problems": []})
    volume = tmp_path / "volume"
    settings = load_settings(extra=[("test", {"export_pipeline": {"export": {"output_dir": str(volume)}}})])
    return {"settings": settings, "volume": volume, "written": written, "disk": tmp_path / "local-disk"}


def test_scratch_goes_to_the_work_folder_and_only_the_gguf_and_manifest_to_the_volume(fake_chain, monkeypatch):
    disk, volume = fake_chain["disk"], fake_chain["volume"]
    real_replace = os.replace
    crossed = []

    def replace(source, target):
        """The local disk and the volume are two file systems: no rename between them."""
        if Path(source).is_relative_to(disk) and Path(target).is_relative_to(volume):
            crossed.append(Path(target).name)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    lines = []
    result = gguf_export.export("educator", fake_chain["settings"], log=lines.append, work_root=disk)
    assert sorted(p.name for p in volume.iterdir()) == ["educator.Q4_K_M.gguf", "educator.Q4_K_M.gguf.json"]
    assert result.gguf.read_bytes() == b"GGUF q4"
    assert json.loads(result.manifest.read_text())["sha256"] == gguf_export.sha256_of(result.gguf)
    assert crossed == ["educator.Q4_K_M.gguf", "educator.Q4_K_M.gguf.json"]  # so each was copied, then renamed
    assert fake_chain["written"] and all(p.is_relative_to(disk) for p in fake_chain["written"])
    assert list(disk.iterdir()) == []  # the scratch folder is gone
    assert any(line.startswith("memory plan for merge") for line in lines)


def test_without_a_work_folder_the_scratch_stays_beside_the_output(fake_chain):
    gguf_export.export("educator", fake_chain["settings"])
    volume = fake_chain["volume"]
    assert all(p.is_relative_to(volume) for p in fake_chain["written"])
    assert sorted(p.name for p in volume.iterdir()) == ["educator.Q4_K_M.gguf", "educator.Q4_K_M.gguf.json"]


def test_an_export_that_cannot_fit_is_refused_before_the_merge(fake_chain):
    with pytest.raises(ConfigError) as err:
        gguf_export.export("educator", fake_chain["settings"], work_root=fake_chain["disk"],
                           memory_limit=MemoryLimit(GIB, "a 1 GiB test function"))
    assert str(err.value).startswith("merging the adapter into") and "1.0 GiB of a 1 GiB test function" in str(err.value)
    assert fake_chain["written"] == [] and list(fake_chain["volume"].iterdir()) == []
