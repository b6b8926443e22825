"""Loading config: TOML files validated into the typed objects of `config_schema`.

Layers, later wins: the project's `config/<name>.toml` < the user file
(`<user dir>/config.toml`, tables named after the files, e.g. `[inference_config.runtime]`)
< environment variables (`POETRY_WORKSHOP__INFERENCE_CONFIG__RUNTIME__N_CTX=2048`)
< `--config PATH` (same shape as the user file). Each layer is checked on its own so an
error names the file (or variable) it came from, the key, and what was expected.
"""

from __future__ import annotations

import json
import os
import tomllib
import types
import typing
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

from poetry_workshop import locations
from poetry_workshop.config.schema import (
    AppConfig,
    ExportPipelineConfig,
    GenerationConfig,
    InferenceConfig,
    QualityGateConfig,
    TrainingConfig,
)
from poetry_workshop.errors import ConfigError

ENV_PREFIX = "POETRY_WORKSHOP__"

# config name -> schema; the two training files share one schema
SCHEMAS: dict[str, type] = {
    "inference_config": InferenceConfig,
    "educator_training": TrainingConfig,
    "poet_training": TrainingConfig,
    "export_pipeline": ExportPipelineConfig,
    "generation": GenerationConfig,
    "app": AppConfig,
    "quality_gate": QualityGateConfig,
}

T = TypeVar("T")


@dataclass
class Settings:
    """All configuration of one run, after layering."""

    inference: InferenceConfig
    educator_training: TrainingConfig
    poet_training: TrainingConfig
    export: ExportPipelineConfig
    generation: GenerationConfig
    app: AppConfig
    gate: QualityGateConfig
    sources: list[str]


def read_toml(path: Path, what: str = "config file") -> dict[str, Any]:
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a {what}; pass a .toml file")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} not found; create it or pass an existing .toml file")
    except PermissionError:
        raise ConfigError(f"{path}: {what} is not readable; check its permissions")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: {what} is not UTF-8 text; save it as UTF-8 TOML")
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax")


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is list:
        return f"a list of {_describe(typing.get_args(tp)[0])}s"
    if origin is dict:
        return f"a table of {_describe(typing.get_args(tp)[1])}"
    if is_dataclass(tp):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    """Check `value` against type `tp`; return the typed value or raise naming source and key."""
    origin = typing.get_origin(tp)
    wrong = ConfigError(
        f"{source}: key '{key}' must be {_describe(tp)}, got {type(value).__name__} {value!r}"
    )
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, source, key)
            except ConfigError:
                pass
        raise wrong
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong
        return build(tp, value, source, key)
    if origin is list:
        if not isinstance(value, list):
            raise wrong
        (item,) = typing.get_args(tp)
        return [_coerce(item, v, source, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong
        _, item = typing.get_args(tp)
        return {k: _coerce(item, v, source, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise wrong
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise wrong
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise wrong
    if tp is str:
        if isinstance(value, str):
            return value
        raise wrong
    raise TypeError(f"config schema uses an unsupported type {tp!r} at {key}")


def build(cls: type[T], data: dict[str, Any], source: str, prefix: str = "") -> T:
    """Make a `cls` from a (possibly partial) table; defaults fill what is missing."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}" if prefix else key
        if key not in known:
            expected = ", ".join(sorted(known))
            raise ConfigError(f"{source}: unknown key '{dotted}'; expected one of: {expected}")
        kwargs[key] = _coerce(hints[key], value, source, dotted)
    return cls(**kwargs)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_layer(environ: typing.Mapping[str, str]) -> list[tuple[str, dict[str, Any]]]:
    layers = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(
                f"environment variable {name}: expected {ENV_PREFIX}<FILE>__<TABLE>__<KEY>"
            )
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw  # a bare word is a string
        table: dict[str, Any] = {parts[-1]: value}
        for part in reversed(parts[:-1]):
            table = {part: table}
        layers.append((f"environment variable {name}", table))
    return layers


Layer = tuple[str, dict[str, Any]]  # (where it came from, {file: {table: {key: value}}})


def override_layers(
    config_path: Path | None, environ: typing.Mapping[str, str], extra: typing.Sequence[Layer] = ()
) -> list[Layer]:
    """Every layer above the config files, lowest first: the user file, the environment,
    `--config`, then `extra` (a run's own settings, such as first-test's small base).
    The Modal backend sends these to the cloud, where the user's files are not."""
    layers: list[Layer] = []
    user_file = locations.user_config_file()
    if user_file.is_file():
        layers.append((str(user_file), read_toml(user_file)))
    layers.extend(_env_layer(environ))
    if config_path is not None:
        layers.append((str(config_path), read_toml(config_path)))
    layers.extend(extra)
    for source, table in layers:
        for name, section in table.items():
            if name not in SCHEMAS:
                raise ConfigError(
                    f"{source}: unknown table '{name}'; expected one of: {', '.join(SCHEMAS)}"
                )
            if not isinstance(section, dict):
                raise ConfigError(f"{source}: '{name}' must be a table like [{name}.section]")
    return layers


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {type(value).__name__} to a config file")


def dump_toml(table: dict[str, Any], prefix: str = "") -> str:
    """The user file's shape only: tables of tables of plain values."""
    plain = [(k, v) for k, v in table.items() if not isinstance(v, dict)]
    nested = [(k, v) for k, v in table.items() if isinstance(v, dict)]
    lines = [f"[{prefix}]"] if prefix and plain else []
    lines += [f"{json.dumps(k) if not k.replace('_', '').replace('-', '').isalnum() else k} = {_toml_value(v)}"
              for k, v in plain]
    out = "\n".join(lines) + ("\n\n" if lines else "")
    for key, value in nested:
        out += dump_toml(value, f"{prefix}.{key}" if prefix else key)
    return out


def save_user_settings(updates: dict[str, Any]) -> Path:
    """Merge `updates` ({file: {table: {key: value}}}) into the user config file, checked
    against the schemas first and written atomically. Comments in that file are not kept."""
    path = locations.user_config_file()
    current = read_toml(path, "user config file") if path.is_file() else {}
    merged = deep_merge(current, updates)
    for name, table in merged.items():
        if name not in SCHEMAS:
            raise ConfigError(f"{path}: unknown table '{name}'; expected one of: {', '.join(SCHEMAS)}")
        build(SCHEMAS[name], table, str(path), name)
    from poetry_workshop.files import write_atomic

    write_atomic(path, "# Your settings; the app's build screen and model switch write here too.\n\n" + dump_toml(merged))
    return path


def load_settings(
    config_path: str | Path | None = None, environ: typing.Mapping[str, str] | None = None,
    extra: typing.Sequence[Layer] = (),
) -> Settings:
    """Read every config file with its overrides; raise `ConfigError` on anything invalid."""
    environ = os.environ if environ is None else environ
    path = Path(config_path).expanduser() if config_path is not None else None
    overrides = override_layers(path, environ, extra)
    loaded: dict[str, Any] = {}
    sources: list[str] = []
    for name, schema in SCHEMAS.items():
        base_file = locations.config_dir() / f"{name}.toml"
        merged = read_toml(base_file)
        build(schema, merged, str(base_file))
        sources.append(str(base_file))
        for source, table in overrides:
            if name in table:
                build(schema, table[name], source, name)  # names the layer that is wrong
                merged = deep_merge(merged, table[name])
        loaded[name] = build(schema, merged, str(base_file))
    sources.extend(source for source, _ in overrides)
    return Settings(
        inference=loaded["inference_config"],
        educator_training=loaded["educator_training"],
        poet_training=loaded["poet_training"],
        export=loaded["export_pipeline"],
        generation=loaded["generation"],
        app=loaded["app"],
        gate=loaded["quality_gate"],
        sources=sources,
    )
