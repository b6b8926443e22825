"""The base model a run trains on: a Hugging Face model name, or a local GGUF made trainable.

A GGUF base (the starter model, for offline runs) is dequantized once by transformers and
saved as a plain checkpoint under `models/.bases/`: transformers marks a model loaded from
GGUF as quantized and the Trainer refuses to train it, so the weights are copied into a
model built from the same config, which carries no such mark. Later runs reuse the copy.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from poetry_workshop import locations
from poetry_workshop.errors import ConfigError


def is_local_gguf(name: str) -> bool:
    return name.endswith(".gguf")


def bases_dir() -> Path:
    return locations.models_dir() / ".bases"


def quiet_transformers() -> None:
    """Progress goes through our own events: drop transformers' weight-loading bars and its
    warnings about argument names trl still uses (they fill the log and say nothing to a user)."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")


def resolve_base(name: str, log=lambda message: None) -> str:
    """A path or hub name that `from_pretrained` can load for training."""
    if not is_local_gguf(name):
        return name
    path = locations.resolve_project_path(name)
    if not path.is_file():
        raise ConfigError(f"base model {path} not found; run `workshop setup` for the starter model or set "
                          "training.base_model to a GGUF file or a Hugging Face model name")
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    target = bases_dir() / f"{path.stem}-{key}"
    if (target / "config.json").is_file():
        return str(target)
    log(f"making {path.name} trainable (dequantizing once into {target})")
    _dequantize(path, target)
    return str(target)


def _dequantize(gguf: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds for an unsupported GGUF
        raise ConfigError(f"{gguf}: transformers cannot load this GGUF as a base ({type(exc).__name__}: {exc})")
    config = loaded.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(loaded.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        plain.save_pretrained(work)
        tokenizer.save_pretrained(work)
        try:
            os.replace(work, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
            # Another build dequantized the same base first; its copy is the same.
            shutil.rmtree(work, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def seat_template_tokens(model, tokenizer, names: list[str] | None = None) -> list[str]:
    """Move the rows of the tokens of a template training gave the base (or of `names`) out
    of the untrained cluster; returns their names.

    A pretrained Gemma has `<start_of_turn>` and `<end_of_turn>` in its vocabulary but never
    wrote them: their embeddings sit among the thousands of `<unused…>` tokens' (cosine 0.93
    with `<unused44>` in Gemma 3 270M), and with tied embeddings the output rows are the same
    vectors. LoRA cannot then teach the model to write `<end_of_turn>` rather than its
    neighbours (it ended turns with `<unused44>`). Nor can a row at the vocabulary's mean be
    told apart: every token's logit shares the mean's part, so only a row's offset from the
    mean singles it out. Each such row becomes the mean plus an offset as long as a typical
    token's (the median over the others), in a direction drawn from a generator seeded with
    the token's id: in hundreds of dimensions, a direction no other token points along, and
    the same one when seated again. The same function runs before training and (with the
    names training recorded) before the merge, where the trained rows then replace these,
    so the export carries the rows the adapter was trained against."""
    import torch

    from poetry_workshop.pipeline.training.chat_examples import template_tokens

    ids = template_tokens(tokenizer) if names is None else tokenizer.convert_tokens_to_ids(names)
    special = {i for i, t in tokenizer.added_tokens_decoder.items() if t.special} | set(tokenizer.all_special_ids)
    rows = model.get_input_embeddings().weight
    with torch.no_grad():
        keep = torch.ones(rows.shape[0], dtype=torch.bool)
        keep[sorted(i for i in special if i < rows.shape[0])] = False
        head = model.get_output_embeddings()
        matrices = [rows] if head is None or head.weight.data_ptr() == rows.data_ptr() else [rows, head.weight]
        for matrix in matrices:  # untied: the output rows too
            mean = matrix[keep].float().mean(dim=0)
            typical = (matrix[keep].float() - mean).norm(dim=1).median()
            for i in ids:
                direction = torch.randn(matrix.shape[1], generator=torch.Generator().manual_seed(int(i)))
                matrix[i] = (mean + direction * (typical / direction.norm())).to(matrix.dtype)
    return tokenizer.convert_ids_to_tokens(ids)


TEMPLATE_ROWS = "template_rows.safetensors"  # beside the adapter and in each checkpoint


def _row_matrices(model) -> list:
    """The embedding matrix, and the output matrix when it is not the same (tied) tensor."""
    rows = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    return [rows] if head is None or head.weight.data_ptr() == rows.data_ptr() else [rows, head.weight]


def train_template_rows(model, ids: list[int]) -> None:
    """Let the optimiser move the rows of `ids` (and no other) of the embedding and output
    matrices, beside the LoRA weights. Call after the model is wrapped for LoRA (which
    freezes everything else) and before the optimiser is made.

    Seating (above) moves a given template's tokens out of the unused cluster, but LoRA still
    cannot move the rows themselves: the pretrained Gemma 3 270M, trained on seated rows,
    ended one golden prompt of two with `<unused44>`. The rows are few, so they are trained
    in full: every other row's gradient is zeroed, and with no weight decay (the Trainer's
    default) Adam leaves a row with a zero gradient where it is."""
    import torch

    for matrix in _row_matrices(model):
        mask = torch.zeros(matrix.shape[0], 1, dtype=matrix.dtype, device=matrix.device)
        mask[ids] = 1
        matrix.requires_grad_(True)
        matrix.register_hook(lambda grad, mask=mask: grad * mask.to(grad.dtype))


def save_template_rows(model, ids: list[int], folder: Path) -> None:
    """Write the trained rows of `ids` into `folder` (an adapter or a checkpoint)."""
    import torch
    from safetensors.torch import save_file

    tensors = {"ids": torch.tensor(ids, dtype=torch.int64)}
    for name, matrix in zip(("input", "output"), _row_matrices(model)):
        tensors[name] = matrix.detach()[ids].to("cpu", torch.float32).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / TEMPLATE_ROWS))


def load_template_rows(model, folder: Path) -> list[int]:
    """Put the rows saved in `folder` back into the model; returns their ids (none when the
    folder has no such file)."""
    import torch
    from safetensors.torch import load_file

    path = folder / TEMPLATE_ROWS
    if not path.is_file():
        return []
    tensors = load_file(str(path))
    ids = tensors["ids"].tolist()
    with torch.no_grad():
        for name, matrix in zip(("input", "output"), _row_matrices(model)):
            if name in tensors:  # a tied model saved one matrix, and its output is the same tensor
                matrix[ids] = tensors[name].to(matrix.device, matrix.dtype)
    return ids
