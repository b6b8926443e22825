"""GGUF header checks happen before llama.cpp sees a file."""

from __future__ import annotations

import os
import struct

import pytest

from poetry_workshop.errors import ModelFileError
from poetry_workshop.inference.gguf_file import read_gguf, require_chat_template, template_family


def test_starter_header(starter_gguf):
    info = read_gguf(starter_gguf)
    assert info.architecture == "llama"
    assert info.template_family == "chatml"
    assert info.quantization == "Q4_1"
    assert info.tensor_count > 0 and info.size_bytes == starter_gguf.stat().st_size
    assert "<|im_start|>" in require_chat_template(info)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda p: None, "not found"),
        (lambda p: p.mkdir(), "is a folder"),
        (lambda p: p.write_bytes(b""), r"empty \(0 bytes\)"),
        (lambda p: p.write_bytes(os.urandom(4096)), "not a GGUF file"),
        (lambda p: p.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\x01"), "truncated"),
        (lambda p: p.write_bytes(b"GGUF" + struct.pack("<IQQ", 99, 1, 1)), "version 99"),
    ],
)
def test_bad_files_are_named_with_the_fix(tmp_path, make, fragment):
    path = tmp_path / "model.gguf"
    make(path)
    with pytest.raises(ModelFileError, match=fragment) as err:
        read_gguf(path)
    assert str(path) in str(err.value)


def test_truncated_inside_metadata(tmp_path, starter_gguf):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(starter_gguf.read_bytes()[:3000])
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(cut)


def test_missing_chat_template_is_refused(tmp_path, starter_gguf):
    data = starter_gguf.read_bytes().replace(b"tokenizer.chat_template", b"tokenizer.chat_templatX", 1)
    path = tmp_path / "notemplate.gguf"
    path.write_bytes(data)
    info = read_gguf(path)
    assert info.chat_template is None and info.template_family == "none"
    with pytest.raises(ModelFileError, match="no chat template"):
        require_chat_template(info)


@pytest.mark.parametrize(
    "template, family",
    [("{{ '<|start_header_id|>' }}", "llama3"), ("[INST] {{ m }}", "llama2/mistral"),
     ("<start_of_turn>user", "gemma"), ("{{ messages }}", "custom")],
)
def test_template_families(template, family):
    assert template_family(template) == family
