"""A role as base + adapter, before anything loads: which adapter a role gets (config, the
`--educator/--poet` flags), and the header checks that refuse a wrong adapter file in one
line naming it: not a GGUF, a full model, another architecture, another base's shapes.

The wrong adapters are written here with gguf-py's own writer (the library the pinned
converter writes adapters with), on the real starter model's shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from poetry_workshop.config.loader import load_settings
from poetry_workshop.errors import ModelFileError
from poetry_workshop.inference.gguf_file import read_adapter, read_gguf
from poetry_workshop.inference.model_choice import choose_models, describe_choices, starter_notice


def write_adapter(path: Path, architecture: str = "llama", width: int = 576, kind: str = "adapter",
                  lora: str = "lora") -> Path:
    """A LoRA adapter GGUF as convert_lora_to_gguf.py lays one out: rank 4 on the first
    layer's query projection of a model `width` wide."""
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_type(kind)
    writer.add_string("adapter.type", lora)
    writer.add_float32("adapter.lora.alpha", 8.0)
    # numpy lists the slowest dimension first, ggml the fastest: lora_a is (inputs, rank) in ggml.
    writer.add_tensor("blk.0.attn_q.weight.lora_a", np.zeros((4, width), dtype=np.float16))
    writer.add_tensor("blk.0.attn_q.weight.lora_b", np.zeros((width, 4), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def base(starter_gguf):
    return read_gguf(starter_gguf, tensors=True)


def test_tensor_shapes_are_read_from_the_header(base):
    assert len(base.tensors) == base.tensor_count
    assert base.tensors["blk.0.attn_q.weight"] == (576, 576)
    assert base.tensors["token_embd.weight"] == (576, 49152)


def test_an_adapter_for_the_base_passes(tmp_path, base):
    info = read_adapter(write_adapter(tmp_path / "educator.lora.gguf"), base)
    assert info.kind == "adapter" and info.architecture == "llama"
    assert info.tensors["blk.0.attn_q.weight.lora_a"] == (576, 4)


def test_a_file_that_is_not_a_gguf_is_named_with_the_fix(tmp_path, base):
    notes = tmp_path / "adapter.gguf"
    notes.write_text("not weights")
    with pytest.raises(ModelFileError, match=r"adapter\.gguf: not a GGUF file, so not a LoRA adapter; .*--adapter"):
        read_adapter(notes, base)


def test_a_missing_adapter_is_named(tmp_path, base):
    with pytest.raises(ModelFileError, match="missing.lora.gguf: adapter file not found"):
        read_adapter(tmp_path / "missing.lora.gguf", base)


def test_a_full_model_given_as_an_adapter_says_to_make_it_the_model(starter_gguf, base):
    with pytest.raises(ModelFileError, match=r"a full model \(general.type 'model'\), not a LoRA adapter; "
                                             r"make it the role's model instead \(`workshop models use ROLE"):
        read_adapter(starter_gguf, base)


def test_another_kind_of_adapter_is_refused(tmp_path, base):
    with pytest.raises(ModelFileError, match="a 'control' adapter, not a LoRA adapter"):
        read_adapter(write_adapter(tmp_path / "c.gguf", lora="control"), base)


def test_an_adapter_for_another_architecture_names_both(tmp_path, base):
    with pytest.raises(ModelFileError, match=r"g\.gguf: a LoRA adapter for the gemma3 architecture, but "
                                             r"SmolLM2-135M-Instruct\.Q4_1\.gguf is llama"):
        read_adapter(write_adapter(tmp_path / "g.gguf", architecture="gemma3", width=640), base)


def test_an_adapter_trained_on_a_base_of_another_size_is_refused(tmp_path, base):
    with pytest.raises(ModelFileError, match=r"wide\.gguf: trained on another base: its blk\.0\.attn_q\.weight "
                                             r"needs inputs of 960, and .* has 576x576"):
        read_adapter(write_adapter(tmp_path / "wide.gguf", width=960), base)


# ------------------------------------------------------------------------ choosing


def _settings(tmp_path, text: str):
    path = tmp_path / "roles.toml"
    path.write_text(text, encoding="utf-8")
    return load_settings(path)


def test_the_config_gives_each_role_its_adapter_and_a_flag_drops_it(tmp_path, starter_gguf):
    educator = write_adapter(tmp_path / "educator.lora.gguf")
    poet = write_adapter(tmp_path / "poet.lora.gguf")
    settings = _settings(tmp_path, f'[inference_config.models]\neducator_adapter = "{educator}"\n'
                                   f'poet = "{starter_gguf}"\npoet_adapter = "{poet}"\n')
    choices = choose_models(settings)
    assert choices["educator"].adapter == educator and choices["poet"].adapter == poet
    assert choices["educator"].path == choices["poet"].path.resolve() == starter_gguf.resolve()
    # A taught role is not the starter as shipped, though it runs on the starter's file.
    assert not choices["educator"].is_starter and starter_notice(choices) is None
    assert describe_choices(choices)[0].startswith(f"Educator: {starter_gguf.name} + adapter educator.lora.gguf")
    flagged = choose_models(settings, educator=str(starter_gguf))
    assert flagged["educator"].adapter is None and flagged["poet"].adapter == poet


def test_choosing_a_wrong_adapter_fails_before_anything_loads(tmp_path, starter_gguf):
    settings = _settings(tmp_path, f'[inference_config.models]\npoet_adapter = "{starter_gguf}"\n')
    with pytest.raises(ModelFileError, match="a full model"):
        choose_models(settings)
    listed = choose_models(settings, check_adapters=False)  # the model list shows it as a problem instead
    assert listed["poet"].adapter == starter_gguf


def test_an_adapter_given_as_a_model_says_how_to_use_it(tmp_path):
    from poetry_workshop.inference.gguf_file import require_chat_template

    adapter = write_adapter(tmp_path / "educator.lora.gguf")
    with pytest.raises(ModelFileError, match=r"educator\.lora\.gguf: a LoRA adapter, not a model; .*--adapter"):
        require_chat_template(read_gguf(adapter))
