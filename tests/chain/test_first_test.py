"""`workshop first-test` end to end and offline: teaching data from the loopback Claude
server over real HTTP, the gate, 5 training samples, one epoch of real LoRA training on the
starter model, export to Q4_K_M, and the app's session code critiquing with the result.
Plus what `workshop pipeline` plans from its flags, and that it asks before spending."""

from __future__ import annotations

import json

import pytest

from poetry_workshop.errors import ConfigError
from poetry_workshop.pipeline.build.plan import ChainPlan
from tests.fakes.claude_server import ClaudeServer
from tests.support.cli import run_cli
from tests.support.training import SMALL_LORA


@pytest.mark.model
def test_first_test_runs_offline_to_a_gguf_the_app_critiques_with(tmp_path, starter_gguf):
    models, data = tmp_path / "models", tmp_path / "data"
    with ClaudeServer() as claude:
        env = {**SMALL_LORA, "ANTHROPIC_BASE_URL": claude.base_url, "ANTHROPIC_API_KEY": "test-key",
               "POETRY_WORKSHOP_DATA": str(data),
               "POETRY_WORKSHOP__EXPORT_PIPELINE__EXPORT__OUTPUT_DIR": f'"{models}"'}
        done = run_cli("first-test", "--backend", "local", "--yes", env=env, timeout=1200)
        calls = claude.count("/v1/messages")
    assert done.returncode == 0, done.stderr[-3000:]
    assert calls == 6  # 3 briefs + 3 lessons, nothing more
    gguf = models / "first-test" / "educator.Q4_K_M.gguf"
    manifest = json.loads((models / "first-test" / "educator.Q4_K_M.gguf.json").read_text())
    assert gguf.is_file() and manifest["base_model"] == str(starter_gguf)
    assert manifest["training"]["run"]["num_epochs"] == 1 and manifest["training"]["steps"] >= 1
    assert manifest["validation"]["template_matches"]
    # Its data stayed apart from the person's own.
    assert (data / "first-test" / "educator_training" / "train.jsonl").is_file()
    assert not (data / "educator_training").exists()
    assert "prepare educator: 4 training examples" in done.stderr  # 5 samples: 4 train, 1 valid
    # The app's session code loaded it as the Educator and critiqued.
    assert "- educator: `educator.Q4_K_M.gguf`" in done.stdout
    assert "## Critique of draft 1 (Educator)" in done.stdout
    assert "first-test: passed" in done.stderr


def test_pipeline_flags_choose_roles_and_tasks():
    both = ChainPlan.from_flags()
    assert both.roles == ("educator", "poet") and list(both.targets)[:2] == ["critiques", "briefs"]
    assert list(both.targets)[-1] == "poet-pairs"  # after briefs, which it writes from
    poet = ChainPlan.from_flags(poet_only=True, epochs=2)
    assert poet.roles == ("poet",) and "lessons" not in poet.targets and poet.epochs == 2
    assert "briefs" in poet.targets and "dialogues" in poet.targets
    assert ChainPlan.from_flags(educator_only=True, train_only=True).targets == {}
    with pytest.raises(ConfigError, match="exclude each other"):
        ChainPlan.from_flags(educator_only=True, poet_only=True)


def test_pipeline_asks_before_spending_and_without_a_terminal_needs_yes(tmp_path):
    raw = tmp_path / "data" / "raw" / "good"
    raw.mkdir(parents=True)
    (raw / "poems.txt").write_text("the kettle clicks off\nand the house goes on\n---\n"
                                   "rain on the tin roof all night\nthe dog asleep by the door\n", encoding="utf-8")
    (raw.parent / "bad").mkdir()
    (raw.parent / "bad" / "weak.txt").write_text("my heart is a tapestry of dreams\nwhispers of the moonlit sea\n",
                                                 encoding="utf-8")
    with ClaudeServer() as claude:
        env = {"ANTHROPIC_BASE_URL": claude.base_url, "ANTHROPIC_API_KEY": "test-key"}
        done = run_cli("pipeline", "--educator-only", env=env, stdin="", timeout=300)
        calls = claude.count("/v1/messages", method="POST") - claude.count("/v1/messages/count_tokens")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Claude calls: critiques 3, briefs 200, lessons 40" in done.stderr and "dialogues (after critiques)" in done.stderr
    assert "add --yes" in done.stderr
    assert calls == 0 and "Traceback" not in done.stderr


def test_pipeline_train_only_without_training_sets_says_to_prepare():
    done = run_cli("pipeline", "--train-only", "--educator-only", timeout=300)
    assert done.returncode == 2 and "workshop data prepare" in done.stderr, done.stderr[-2000:]
