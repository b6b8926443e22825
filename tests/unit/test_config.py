"""Config layering and validation: defaults < user file < environment < --config."""

from __future__ import annotations

import pytest

from poetry_workshop.config import loader as config
from poetry_workshop.errors import ConfigError


def test_shipped_files_load_with_the_seed_values():
    s = config.load_settings(environ={})
    assert s.inference.runtime.n_ctx == 4096
    assert s.educator_training.lora.r == 64 and s.educator_training.lora.alpha == 128
    assert s.educator_training.training.num_epochs == 4 and s.educator_training.training.max_seq == 4096
    assert s.poet_training.training.num_epochs == 6 and s.poet_training.training.max_seq == 2048
    assert s.educator_training.training.base_model == "meta-llama/Llama-3.1-8B-Instruct"
    assert s.export.export.quantization == "Q4_K_M"
    assert s.generation.claude.model == "claude-sonnet-5-5"
    assert s.generation.claude.temperature is None  # sampling is sent only when configured
    assert s.generation.prices.models["claude-sonnet-5-5"].output_per_mtok == 10.0


def test_layers_apply_in_order(workshop_home, tmp_path):
    workshop_home.mkdir(parents=True)
    (workshop_home / "config.toml").write_text(
        "[inference_config.runtime]\nn_ctx = 2048\nn_batch = 128\n", encoding="utf-8"
    )
    env = {"POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX": "1024"}
    s = config.load_settings(environ=env)
    assert (s.inference.runtime.n_ctx, s.inference.runtime.n_batch) == (1024, 128)
    flag = tmp_path / "run.toml"
    flag.write_text("[inference_config.runtime]\nn_ctx = 512\n", encoding="utf-8")
    s = config.load_settings(flag, environ=env)
    assert s.inference.runtime.n_ctx == 512
    assert s.inference.runtime.n_batch == 128  # untouched keys keep the lower layers' values


def test_env_values_parse_as_toml_with_bare_strings():
    env = {
        "POETRY_WORKSHOP__INFERENCE_CONFIG__MODELS__EDUCATOR": "models/mine.gguf",
        "POETRY_WORKSHOP__INFERENCE_CONFIG__SAMPLING__POET__TEMPERATURE": "0.5",
    }
    s = config.load_settings(environ=env)
    assert s.inference.models.educator == "models/mine.gguf"
    assert s.inference.sampling.poet.temperature == 0.5
    assert s.inference.sampling.educator.temperature == 0.6


@pytest.mark.parametrize(
    "body, fragments",
    [
        ("[inference_config.runtime]\nn_ctxx = 5\n", ["unknown key 'inference_config.runtime.n_ctxx'", "n_ctx"]),
        ('[inference_config.runtime]\nn_ctx = "big"\n', ["'inference_config.runtime.n_ctx'", "an integer", "'big'"]),
        ("[inference_config.runtime]\nn_ctx = true\n", ["an integer"]),
        ("[educator_training.lora]\ntarget_modules = [1, 2]\n", ["target_modules[0]", "a string"]),
        ("[nonsense.table]\nx = 1\n", ["unknown table 'nonsense'"]),
        ("[inference_config\n", ["not valid TOML"]),
    ],
)
def test_bad_config_names_file_key_and_expectation(tmp_path, body, fragments):
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        config.load_settings(path, environ={})
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load_settings(tmp_path / "absent.toml", environ={})


def test_missing_shipped_file_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("POETRY_WORKSHOP_ROOT", str(tmp_path))
    with pytest.raises(ConfigError, match=r"inference_config\.toml: config file not found"):
        config.load_settings(environ={})


def test_env_variable_errors_name_the_variable():
    with pytest.raises(ConfigError, match="environment variable POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX"):
        config.load_settings(environ={"POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX": "abc"})
    with pytest.raises(ConfigError, match="expected POETRY_WORKSHOP__<FILE>__<TABLE>__<KEY>"):
        config.load_settings(environ={"POETRY_WORKSHOP__N_CTX": "1"})
