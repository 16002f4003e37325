"""The config schema: YAML + overrides, and errors that name the key and the file."""

from pathlib import Path

import pytest

from harness.run.config import HarnessConfig, load_config
from harness.core.errors import HarnessError

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


MINIMAL = """
data:
  domain: {pdf: doc.pdf}
  counseling: {path: chats.jsonl}
  safety: {sources: [{path: prompts.jsonl}]}
"""


@pytest.mark.parametrize("name", ["default", "tiny", "qwen3-1.7b"])
def test_shipped_configs_validate(name):
    config = load_config(REPO / "configs" / f"{name}.yaml")
    assert isinstance(config, HarnessConfig)
    assert [arm.name for arm in config.lineage.training_order()] == ["domain", "instruct-only", "instruct"]
    assert [(c.arm, c.reference) for c in config.comparisons] == [("instruct", "instruct-only")]


def test_recipe_config_mirrors_the_original_recipe():
    config = load_config(REPO / "configs" / "qwen3-1.7b.yaml")
    assert config.model.name == "Qwen/Qwen3-1.7B" and config.model.load_in_8bit
    assert (config.lora.r, config.lora.alpha, config.lora.dropout) == (8, 16, 0.05)
    assert config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    domain, instruct = config.training.domain, config.training.instruct
    assert (domain.epochs, instruct.epochs, domain.learning_rate) == (7, 1, 2e-4)
    assert (domain.batch_size, domain.grad_accum, domain.lr_scheduler) == (2, 8, "cosine")
    assert config.data.domain.max_length == 768
    assert config.model.trust_remote_code is False


def test_yaml_paths_resolve_against_the_file_and_overrides_against_cwd(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)
    monkeypatch.chdir(REPO)
    config = load_config(path, ["data.domain.pdf=other.pdf", "training.domain.epochs=2"])
    assert config.data.counseling.path == str(tmp_path / "chats.jsonl")
    assert config.data.domain.documents == [REPO / "other.pdf"], "the older `pdf` key is one document"
    assert config.training.domain.epochs == 2
    listed = load_config(path, ["data.domain.documents=[a.pdf, notes]"])
    assert listed.data.domain.documents == [REPO / "a.pdf", REPO / "notes"]
    assert load_config(path).data.domain.documents == [tmp_path / "doc.pdf"]


def test_domain_documents_as_one_path_or_a_list_but_not_beside_pdf(tmp_path):
    one = load_config(write(tmp_path, MINIMAL.replace("domain: {pdf: doc.pdf}", "domain: {documents: corpus}")))
    assert one.data.domain.documents == [tmp_path / "corpus"]
    with pytest.raises(HarnessError, match=r"data.domain has both `pdf` and `documents`"):
        load_config(write(tmp_path, MINIMAL.replace("domain: {pdf: doc.pdf}", "domain: {pdf: doc.pdf, documents: [a.md]}")))
    with pytest.raises(HarnessError, match=r"key `data.domain.documents`: name at least one document"):
        load_config(write(tmp_path, MINIMAL.replace("domain: {pdf: doc.pdf}", "domain: {documents: []}")))
    with pytest.raises(HarnessError, match=r"key `data.domain.heldout_by`"):
        load_config(write(tmp_path, MINIMAL), ["data.domain.heldout_by=pages"])


def test_unknown_key_names_the_key_and_file(tmp_path):
    path = write(tmp_path, MINIMAL + "trainig: {}\n")
    with pytest.raises(HarnessError, match=r"run.yaml: unknown key `trainig`"):
        load_config(path)


def test_wrong_type_names_the_nested_key(tmp_path):
    path = write(tmp_path, MINIMAL + "lora: {r: many}\n")
    with pytest.raises(HarnessError, match=r"run.yaml: key `lora.r`"):
        load_config(path)


def test_override_typo_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match=r"unknown key `training.domain.epoch`"):
        load_config(write(tmp_path, MINIMAL), ["training.domain.epoch=3"])


def test_override_needs_key_value(tmp_path):
    with pytest.raises(HarnessError, match="KEY=VALUE"):
        load_config(write(tmp_path, MINIMAL), ["training.domain.epochs"])


def test_generation_batch_size_is_auto_unless_a_number_of_prompts_is_given(tmp_path):
    assert load_config(write(tmp_path, MINIMAL)).eval.generation.batch_size == "auto"
    assert load_config(write(tmp_path, MINIMAL), ["eval.generation.batch_size=16"]).eval.generation.batch_size == 16
    for bad in ("0", "many", "true"):
        with pytest.raises(HarnessError) as err:
            load_config(write(tmp_path, MINIMAL), [f"eval.generation.batch_size={bad}"])
        assert "key `eval.generation.batch_size`: write auto" in str(err.value) and "\n" not in str(err.value)


def test_enormous_generation_cap_is_refused(tmp_path):
    with pytest.raises(HarnessError, match=r"eval.generation.max_new_tokens.*8192"):
        load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens=1000000"])
    assert load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens=8192"]).eval.generation.max_new_tokens == 8192


def test_each_eval_can_have_its_own_generation_budget(tmp_path):
    generation = load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens=64"]).eval.generation
    assert (generation.budget_for("similarity"), generation.budget_for("safety")) == (64, 256), "safety's default budget"
    generation = load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens_by_eval.safety=512"]).eval.generation
    assert generation.budget_for("safety") == 512
    with pytest.raises(HarnessError, match=r"eval.generation.max_new_tokens_by_eval.safety.*8192"):
        load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens_by_eval.safety=9000"])


def test_a_budget_for_an_unknown_eval_is_a_one_line_error(tmp_path):
    import harness.evals  # noqa: F401  (registers the evals)
    from harness.evals.runner import evaluate_checkpoint

    config = load_config(write(tmp_path, MINIMAL), ["eval.generation.max_new_tokens_by_eval.safty=512"])
    with pytest.raises(HarnessError, match=r"^eval.generation.max_new_tokens_by_eval: unknown eval 'safty'; use one of .*safety"):
        evaluate_checkpoint(config, None, None, tmp_path)


@pytest.mark.parametrize("fraction", ["0", "0.6", "-0.1"])
def test_heldout_fraction_outside_range(tmp_path, fraction):
    with pytest.raises(HarnessError, match=r"data.domain.heldout_fraction.*\(0, 0.5\]"):
        load_config(write(tmp_path, MINIMAL), [f"data.domain.heldout_fraction={fraction}"])


def test_column_preset_switch_by_override(tmp_path):
    config = load_config(write(tmp_path, MINIMAL), ["data.counseling.preset=counsel_chat"])
    assert config.data.counseling.columns() == {
        "prompt_column": "questionText",
        "response_column": "answerText",
        "title_column": "questionTitle",
        "id_column": "questionID",
    }


def test_instruct_arm_needs_domain(tmp_path):
    with pytest.raises(HarnessError, match="parent 'domain' is neither `base` nor an arm in `arms`"):
        load_config(write(tmp_path, MINIMAL + "arms: [instruct]\n"))


@pytest.mark.parametrize("name", ["../../etc", "a/b", ".."])
def test_path_like_run_names_are_rejected(tmp_path, name):
    with pytest.raises(HarnessError, match="not a plain directory name"):
        load_config(write(tmp_path, MINIMAL), [f"name={name}"])


def test_missing_config_file(tmp_path):
    with pytest.raises(HarnessError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(HarnessError, match=r"run.yaml: line \d+ is not valid YAML"):
        load_config(write(tmp_path, "data: [unclosed\n"))


def test_config_hash_changes_with_settings(tmp_path):
    path = write(tmp_path, MINIMAL)
    assert load_config(path).fingerprint() == load_config(path).fingerprint()
    assert load_config(path).fingerprint() != load_config(path, ["seed=1"]).fingerprint()


def test_a_key_written_twice_is_an_error_naming_its_line(tmp_path):
    path = write(tmp_path, MINIMAL + "seed: 1\nseed: 2\n")
    with pytest.raises(HarnessError, match=r"run\.yaml: line 7 is not valid YAML \(key 'seed' appears twice\)"):
        load_config(path)


def test_a_key_written_twice_in_an_override_is_an_error(tmp_path):
    with pytest.raises(HarnessError, match="key 'r' appears twice"):
        load_config(write(tmp_path, MINIMAL), ["lora={r: 4, r: 8}"])


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_no_setting_may_be_infinite_or_nan(tmp_path, value):
    with pytest.raises(HarnessError, match="training.domain.learning_rate.*finite"):
        load_config(write(tmp_path, MINIMAL), [f"training.domain.learning_rate={value}"])
