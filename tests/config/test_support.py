"""Every key is implemented, refused with its reason, or not needed — never accepted and ignored."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lf_ray.cli import main
from lf_ray.config import config_warnings, load_config, prepare_config
from lf_ray.config.schema import all_keys, dataclass_keys
from lf_ray.config.support import NOT_NEEDED, REFUSED, key_status
from lf_ray.config.training_args import LF_TRAINING_KEYS
from lf_ray.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
LF_RAY_KEYS = sorted({*dataclass_keys(), *LF_TRAINING_KEYS})
"""The keys lf-ray owns; transformers' own training keys go to its `Seq2SeqTrainingArguments`."""


def _source(folder: Path, skip: str) -> str:
    return "\n".join(p.read_text() for p in folder.rglob("*.py") if skip not in p.relative_to(folder).parts)


CODE = _source(ROOT / "lf_ray", "config")  # what reads a key, outside the config package that defines it
TESTS = _source(ROOT / "tests", "config")


NOT_THE_KEY: dict[str, str] = {}
"""Names that code uses for something other than the config key."""

READ_AS_A_GROUP = {
    "length_penalty": "`GeneratingArguments.generation_kwargs()` hands every generating key to `model.generate`",
}
"""Keys that code reads with their whole group, not by name."""


def _read(key: str, text: str) -> bool:
    return key not in NOT_THE_KEY and re.search(rf"\.{key}\b|[\"']{key}[\"']|\b{key}=", text) is not None


def test_every_key_is_consumed_and_tested_or_refused_or_not_needed():
    consumed = [key for key in LF_RAY_KEYS if key in READ_AS_A_GROUP or _read(key, CODE)]
    neither = [key for key in LF_RAY_KEYS if key not in REFUSED and key not in NOT_NEEDED and key not in consumed]
    assert neither == [], f"accepted, but read by nothing outside lf_ray/config (refuse them): {neither}"
    untested = [key for key in LF_RAY_KEYS if key_status(key) == "implemented" and not _read(key, TESTS)]
    assert untested == [], f"implemented keys that no test outside tests/config sets: {untested}"


def test_a_refused_key_is_read_by_nothing():
    read = [key for key in REFUSED if _read(key, CODE)]
    assert read == [], f"refused at parse time, so code that reads them is dead: {read}"


def _other_value(key: str):
    spec = all_keys()[key]
    default = spec.default
    if spec.value.choices:
        return next(choice for choice in spec.value.choices if choice != default and choice is not None)
    if isinstance(default, bool) or ("bool" in spec.value.kinds and default is None):
        return not default
    if isinstance(default, (int, float)):
        return 4 if default != 4 else 8
    if "int" in spec.value.kinds:
        return 4
    if "float" in spec.value.kinds:
        return 0.5
    if "dict" in spec.value.kinds:
        return '{"type": "linear", "factor": 2.0}'
    return "some-value"


@pytest.mark.parametrize("key", sorted(REFUSED))
def test_a_refused_key_set_stops_the_config_at_parse_time_with_its_reason(key):
    value = _other_value(key)
    with pytest.raises(ConfigError) as err:
        prepare_config(None, ["model_name_or_path=builtin:tiny-llama", f"{key}={value}"])
    message = str(err.value)
    line = next(line for line in message.splitlines() if f"`{key}: " in line)
    assert REFUSED[key].asks_for in line and f"Fix: {REFUSED[key].instead}" in line


def test_refused_keys_left_at_their_defaults_pass():
    keys = ["model_name_or_path=builtin:tiny-llama", "use_kt=false", "freeze_vision_tower=true"]
    cfg = prepare_config(None, keys)
    assert cfg.get("use_kt") is False


def test_keys_of_one_feature_are_reported_together():
    with pytest.raises(ConfigError) as err:
        prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "use_kt=true", "kt_lora_expert_num=2"])
    (line,) = [line for line in str(err.value).splitlines() if "KTransformers" in line]
    assert "`use_kt: true`, `kt_lora_expert_num: 2` ask for KTransformers" in line


def test_llama_factory_0_9_5_keys_load_and_are_refused():
    keys = ["use_hyper_parallel=true", "hyper_parallel_args=hp.json"]
    implemented = ["use_asft_loss=true", "asft_alpha=0.2", "preserve_thinking=true"]
    implemented += ["enable_torch_profiler=true", "profiler_wait_steps=2", "profile_modules=x"]
    cfg = load_config(None, ["model_name_or_path=builtin:tiny-llama", *implemented, *keys])
    assert cfg.get("profiler_wait_steps") == 2 and cfg.data.preserve_thinking is True
    assert cfg.finetuning.use_asft_loss is True and cfg.finetuning.asft_alpha == 0.2  # implemented: no "unknown key"
    with pytest.raises(ConfigError) as err:
        prepare_config(None, ["model_name_or_path=builtin:tiny-llama", *keys])
    assert all(f"`{key.split('=')[0]}: " in str(err.value) for key in keys)
    profiling = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", *implemented[3:]])  # implemented
    assert profiling.get("enable_torch_profiler") is True and profiling.get("profile_modules") == "x"


def test_a_key_that_is_not_needed_is_accepted_with_a_note():
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "data_shared_file_system=true"])
    (note,) = config_warnings(cfg)
    assert note.startswith("`data_shared_file_system` has no effect in lf-ray: lf-ray tokenizes once")


def test_the_cli_refuses_with_exit_status_2_and_no_traceback(tmp_path, capsys):
    config = tmp_path / "shift.yaml"
    config.write_text("model_name_or_path: builtin:tiny-llama\nshift_attn: true\n")
    assert main(["train", str(config), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "`shift_attn: true` asks for LongLoRA's shift short attention" in err
    assert "Traceback" not in err


def test_lf_ray_keys_shows_each_keys_status(capsys):
    assert main(["keys", "use_kt", "master_addr", "lora_rank"]) == 0
    out = capsys.readouterr().out
    assert "lf-ray: refused: asks for KTransformers" in out
    assert "lf-ray: not needed: Ray Train picks the rendezvous address" in out
    lora_rank = out.split("lora_rank  [", 1)[1].split("use_kt  [", 1)[0]
    assert "lf-ray:" not in lora_rank  # implemented: no status line
