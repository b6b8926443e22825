"""The Modal app: the same training and export functions as on this machine, on cloud GPUs.

Three volumes, mounted at fixed paths in the container and found through the same
environment variables the local backend honours (locations.py):
`poetry-data` (training sets and upload.json), `poetry-checkpoints` (checkpoints and
adapters) and `poetry-gguf` (published models and manifests). The Hugging Face token comes
from the secret `huggingface-secret` as HF_TOKEN; it is checked before anything loads and
never printed.

A preempted or failed attempt is retried on the same input (`modal.Retries`); training then
resumes from the newest checkpoint, which is safe because the checkpoint volume is
committed after every checkpoint. Export works on the container's own disk and copies only
the GGUF and its manifest into the GGUF volume (temporary name, then rename), then commits it.

From this machine: `workshop train|export|pipeline|first-test --backend modal`, or
`modal run poetry_workshop/pipeline/build/modal_main.py [--educator-only] [--poet-only]
[--train-only] [--num-epochs N]` (the entry point lives there so that this module never
imports the chain that calls it). The function options come from config/export_pipeline.toml [modal].
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path

import modal

from poetry_workshop import locations
from poetry_workshop.config.loader import Layer, load_settings
from poetry_workshop.errors import ConfigError
from poetry_workshop.names import ROLES

DATA_MOUNT = "/vol/data"
CHECKPOINT_MOUNT = "/vol/checkpoints"
GGUF_MOUNT = "/vol/gguf"

# What the image installs, pinned to the versions this project is tested with (CUDA torch
# from PyPI's default Linux wheels; bitsandbytes for QLoRA).
IMAGE_PACKAGES = (
    "torch==2.13.0", "transformers==5.24.0", "trl==1.16.0", "peft==0.21.2", "accelerate==1.15.0",
    "datasets==5.2.0", "bitsandbytes==0.50.2", "sentencepiece==0.2.3", "gguf==0.19.0",
    "safetensors==0.8.0", "numpy==2.4.6", "protobuf==7.36.2", "platformdirs>=4",
    "llama-cpp-python==0.3.36",  # quantize and validate; its sdist also carries the converter
)
CONTAINER_ENV = {
    locations.ROOT_ENV: "/root",
    locations.DATA_ENV: DATA_MOUNT,
    locations.CHECKPOINTS_ENV: CHECKPOINT_MOUNT,
    locations.HOME_ENV: "/tmp/workshop-home",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}

_project = locations.project_root()
_settings = load_settings()
MODAL = _settings.export.modal

# llama.cpp compiles with -march=native unless told otherwise: an image built on one CPU
# would then die with SIGILL (illegal instruction) on a container scheduled on another.
BUILD_ENV = {"CMAKE_ARGS": "-DGGML_NATIVE=OFF"}

image = (
    modal.Image.debian_slim(python_version="3.11")
    .apt_install("build-essential", "cmake")  # llama-cpp-python compiles llama.cpp
    .env(BUILD_ENV)
    .pip_install(*IMAGE_PACKAGES)
    .env(CONTAINER_ENV)
    .add_local_dir(_project / "config", "/root/config")
    .add_local_dir(_project / "persona", "/root/persona")
    .add_local_python_source("poetry_workshop")
)

data_volume = modal.Volume.from_name(MODAL.data_volume, create_if_missing=True)
checkpoint_volume = modal.Volume.from_name(MODAL.checkpoint_volume, create_if_missing=True)
gguf_volume = modal.Volume.from_name(MODAL.gguf_volume, create_if_missing=True)
hf_secret = modal.Secret.from_name(MODAL.hf_secret)

app = modal.App("poetry-workshop", image=image)

# Kept as data so a test (and `workshop` itself) can check what each function asks for.
TRAIN_OPTIONS = dict(
    gpu=[MODAL.gpu, *MODAL.gpu_fallbacks],
    volumes={DATA_MOUNT: data_volume, CHECKPOINT_MOUNT: checkpoint_volume},
    secrets=[hf_secret],
    timeout=MODAL.timeout_s,
    retries=modal.Retries(max_retries=MODAL.retries, initial_delay=10.0, backoff_coefficient=2.0),
)
EXPORT_OPTIONS = dict(
    gpu=None,  # merge, convert and quantize run on CPUs; memory holds the base in bf16
    cpu=MODAL.export_cpu,
    memory=MODAL.export_memory_mib,
    volumes={CHECKPOINT_MOUNT: checkpoint_volume, GGUF_MOUNT: gguf_volume},
    secrets=[hf_secret],
    timeout=MODAL.timeout_s,
    retries=modal.Retries(max_retries=MODAL.retries, initial_delay=10.0, backoff_coefficient=2.0),
)


def _commit(volume) -> None:
    """Volume writes persist only after commit(); in `.local()` there is no volume to commit."""
    if not modal.is_local():
        volume.commit()


def require_hf_token(base_model: str) -> None:
    """A hub base needs the token from the secret; say how to add it (never what it is)."""
    from poetry_workshop.pipeline.training.base_model import is_local_gguf

    if is_local_gguf(base_model) or Path(base_model).expanduser().exists():
        return
    if not os.environ.get("HF_TOKEN", "").strip():
        raise ConfigError(f"no HF_TOKEN for base model '{base_model}': the Modal secret '{MODAL.hf_secret}' must "
                          f"hold it; create it with `modal secret create {MODAL.hf_secret} HF_TOKEN=<token>` using a "
                          "read token whose account has accepted the model's licence")


def _remote_layers(role: str | None, layers: list[Layer]) -> list[Layer]:
    """The caller's settings, with the training sets at their volume paths (the caller's own
    paths mean nothing in the container)."""
    fixed: dict = {}
    for r in ([role] if role else ROLES):
        fixed[f"{r}_training"] = {"data": {"train": f"data/{r}_training/train.jsonl",
                                           "valid": f"data/{r}_training/valid.jsonl"}}
    return [*layers, ("cloud data paths", fixed)]


@app.function(**TRAIN_OPTIONS)
def train_role(role: str, layers: list[Layer], epochs: int | None = None, max_steps: int | None = None,
               expected: dict[str, str] | None = None) -> dict:
    """Train one role's adapter from the data volume; checkpoints commit as they land."""
    from poetry_workshop.pipeline.build.cloud_sync import verify_upload
    from poetry_workshop.pipeline.training.trainer import train

    settings = load_settings(environ={}, extra=_remote_layers(role, layers))
    config = settings.educator_training if role == "educator" else settings.poet_training
    require_hf_token(config.training.base_model)
    verify_upload(locations.data_dir(), role, expected)

    result = train(role, settings, epochs=epochs, max_steps=max_steps,
                   on_progress=lambda event: print(f"{role}: {event.describe()}", flush=True),
                   log=lambda m: print(m, flush=True), on_checkpoint=lambda folder: _commit(checkpoint_volume))
    return asdict(result.summary())  # plain data over the wire


def scratch_dir() -> Path:
    """The container's own disk for the export's scratch (the merged model, the f16 GGUF):
    anything written under a mounted volume is uploaded by its background commits, scratch
    included, and left there after a crash."""
    return Path(tempfile.gettempdir())


@app.function(**EXPORT_OPTIONS)
def export_role(role: str, layers: list[Layer]) -> dict:
    """Merge, convert, quantize and validate one role's model on the container's disk, then
    publish only the GGUF and its manifest to the GGUF volume."""
    from poetry_workshop.pipeline.training.gguf_export import export
    from poetry_workshop.pipeline.training.memory_plan import modal_export_memory

    out = [("cloud model folder", {"export_pipeline": {"export": {"output_dir": GGUF_MOUNT}}})] \
        if not modal.is_local() else []
    settings = load_settings(environ={}, extra=[*_remote_layers(role, layers), *out])
    config = settings.educator_training if role == "educator" else settings.poet_training
    require_hf_token(config.training.base_model)
    result = export(role, settings, log=lambda m: print(f"{role}: {m}", flush=True), work_root=scratch_dir(),
                    memory_limit=modal_export_memory(settings.export.modal))
    _commit(gguf_volume)
    return {"role": role, "gguf": result.gguf.name, "validation": result.validation}

