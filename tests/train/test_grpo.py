"""Stage grpo without Ray: its keys, the reward functions (built-in, by import path, broken), the reward model, and
the trainer learning a reward on the tiny Llama from the template's prompt ids (CPU, builtin tiny-llama)."""

from __future__ import annotations

import statistics

import pytest
import torch

from lf_ray.cli import main
from lf_ray.errors import ConfigError, TrainError
from lf_ray.model.loader import load_causal_lm
from lf_ray.train.arguments import build_training_arguments
from lf_ray.train.rewards import checked, exact_match, numeric_match, resolve, reward_functions
from tests.train import grpo_rewards
from tests.train.stage_runs import lora, stage_config, train

REWARDS = "tests.train.grpo_rewards"


def test_builtin_rewards_score_verifiable_answers():
    assert exact_match(completions=[" 12\n", "13", "12."], answer=["12", "12", "12"]) == [1.0, 0.0, 0.0]
    completions = ["The answer is 1,000.", "7, no: 8", "no idea", "-4"]
    assert numeric_match(completions=completions, answer=["1000", "8", "3", "-4.0"]) == [1.0, 1.0, 0.0, 1.0]
    cfg = stage_config(
        "grpo",
        "reward_funcs=format_match,length_penalty",
        r"reward_format_pattern=<answer>-?\d+</answer>",
        "max_completion_length=4",
    )
    format_match, length_penalty = reward_functions(cfg.finetuning)
    assert format_match(completions=["<answer>12</answer>", "12", "<answer>1</answer> and more"]) == [1.0, 0.0, 0.0]
    assert length_penalty(completions=["a", "b"], completion_ids=[[5, 6], [5, 6, 7, 8]]) == [-0.5, -1.0]
    assert (format_match.__name__, length_penalty.__name__) == ("format_match", "length_penalty")


def test_grpo_keys_become_trls_grpo_config(tmp_path):
    cfg = stage_config(
        "grpo",
        "reward_funcs=exact_match,numeric_match",
        "reward_weights=1,0.5",
        "num_generations=4",
        "max_completion_length=12",
        "grpo_beta=0.04",
        "grpo_epsilon=0.1",
        "grpo_epsilon_high=0.28",
        "grpo_loss_type=dr_grpo",
        "grpo_scale_rewards=batch",
        "grpo_num_iterations=2",
        "mask_truncated_completions=true",
        "temperature=0.7",
        "top_p=0.9",
        "top_k=20",
    )
    args = build_training_arguments(cfg, output_dir=str(tmp_path))
    assert type(args).__name__ == "GRPOConfig"
    assert (args.num_generations, args.max_completion_length, args.beta) == (4, 12, 0.04)
    assert (args.epsilon, args.epsilon_high, args.loss_type, args.scale_rewards) == (0.1, 0.28, "dr_grpo", "batch")
    assert (args.num_iterations, args.mask_truncated_completions, args.reward_weights) == (2, True, [1.0, 0.5])
    assert (args.temperature, args.top_p, args.top_k) == (0.7, 0.9, 20)
    assert args.learning_rate == 5e-3  # the configured one, not TRL's 1e-6 default


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("exactmatch", "`exactmatch` is neither a built-in (exact_match, numeric_match, format_match, length_penalty)"),
        ("tests.train.no_such_module:score", "cannot be imported: ModuleNotFoundError: No module named"),
        (f"{REWARDS}:missing", f"module `{REWARDS}` ("),
        (f"{REWARDS}:no_keywords", "cannot be called as GRPO calls a reward function"),
    ],
)
def test_a_reward_function_that_cannot_be_used_is_named_before_training(name, message):
    cfg = stage_config("grpo", f"reward_funcs={name}")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve(name, cfg.finetuning)


def test_a_bad_reward_function_stops_train_at_parse_time_with_status_2(tmp_path, capsys):
    config = tmp_path / "grpo.yaml"
    config.write_text(
        "model_name_or_path: builtin:tiny-llama\nstage: grpo\ndataset_dir: builtin\ndataset: arithmetic_prompts\n"
        f"output_dir: {tmp_path / 'out'}\nreward_funcs: {REWARDS}:nope\n"
    )
    code = main(["train", str(config), "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2 and f"reward_funcs: `{REWARDS}:nope`" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("func", "message"),
    [
        (grpo_rewards.words, "reward function `words` returned 'high' (a str) for completion 0 'a sum'"),
        (grpo_rewards.not_a_number, "reward function `not_a_number` returned nan (a float) for completion 0"),
        (lambda **kwargs: [1.0], "reward function `short` returned 1 values for 2 completions"),
    ],
)
def test_a_reward_that_is_not_a_finite_number_names_the_function_and_the_value(func, message):
    name = getattr(func, "__name__", "short").replace("<lambda>", "short")
    with pytest.raises(TrainError, match=message.replace("(", r"\(").replace(")", r"\)")):
        checked(func, name)(completions=["a sum", "b"], completion_ids=[[1], [2]])


def test_grpo_learns_a_reward_from_the_templates_prompt_ids(encoded, tiny_llama_path, tmp_path):
    """Full fine-tuning of the tiny Llama on 32 completions a step: the share of low token ids rises; the reward
    functions see the decoded prompt and reference answer and the prompt's ids; KL to the reference is logged."""
    tokenizer, rows = encoded("grpo")
    cfg = stage_config(
        "grpo",
        "finetuning_type=full",
        f"reward_funcs={REWARDS}:low_ids,{REWARDS}:seen_columns",
        "max_steps=16",
        "learning_rate=1e-2",
        "per_device_train_batch_size=32",
        "grpo_beta=0.04",
        "max_prompt_length=40",
        "temperature=1.0",
        "top_p=1.0",
        "top_k=0",
    )
    grpo_rewards.SEEN.clear()
    trainer = train(cfg, load_causal_lm(tiny_llama_path), tokenizer, rows[:64], tmp_path)
    logs = [entry for entry in trainer.state.log_history if f"rewards/{REWARDS}:low_ids/mean" in entry]
    rewards = [entry[f"rewards/{REWARDS}:low_ids/mean"] for entry in logs]
    assert len(rewards) == 16
    assert statistics.mean(rewards[-4:]) > statistics.mean(rewards[:4]) + 0.15, rewards
    assert logs[-1]["kl"] > 0 and "completions/mean_length" in logs[-1]
    prompt, answer, ids = grpo_rewards.SEEN[0]
    assert tokenizer.decode(ids, skip_special_tokens=True) == prompt and "Answer with the number only." in prompt
    assert answer.lstrip("-").isdigit()
    sampled_from = {tuple(row["input_ids"][-40:]) for row in rows[:64]}
    assert len(ids) < 40 or tuple(ids[-40:]) in sampled_from


def test_a_reward_that_is_nan_stops_grpo_at_the_first_step(encoded, tiny_llama_path, tmp_path):
    tokenizer, rows = encoded("grpo")
    cfg = stage_config("grpo", f"reward_funcs={REWARDS}:not_a_number", "max_steps=2")
    with pytest.raises(TrainError, match=f"reward function `{REWARDS}:not_a_number` returned nan"):
        train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows[:8], tmp_path)


@pytest.mark.parametrize("kind", ["full", "full with adapters", "lora"])
def test_the_reward_model_scores_prompt_and_completion_ids(kind, tiny_llama_path, tmp_path):
    from transformers import AutoModelForSequenceClassification

    from lf_ray.model.reward import load_reward_model
    from lf_ray.train.rewards import model_reward

    torch.manual_seed(0)
    prompts, completions = [[11, 12, 13], [14, 15]], [[16, 17], [18]]
    base = AutoModelForSequenceClassification.from_pretrained(tiny_llama_path, num_labels=1).eval()
    base.save_pretrained(tmp_path / "rm")
    base_scores = _scores(base, prompts, completions)
    scorer = lora(base, "SEQ_CLS").eval()  # wraps `base` in place
    with torch.no_grad():  # an adapter that changes the scores
        for name, param in scorer.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    scorer.save_pretrained(tmp_path / "adapter")
    keys = {
        "full": [f"reward_model={tmp_path / 'rm'}", "reward_model_type=full"],
        "full with adapters": [
            f"reward_model={tmp_path / 'rm'}",
            f"reward_model_adapters={tmp_path / 'adapter'}",
            "reward_model_type=full",
        ],
        "lora": [f"reward_model={tmp_path / 'adapter'}", "reward_model_type=lora"],
    }[kind]
    cfg = stage_config("grpo", f"model_name_or_path={tiny_llama_path}", *keys)
    from lf_ray.data.tokenizer_spec import tokenizer_spec

    tokenizer, _ = tokenizer_spec(cfg).load()
    reward = model_reward(load_reward_model(cfg, tokenizer), tokenizer.pad_token_id, max_prompt_length=None)
    scores = reward(input_ids=prompts, completion_ids=completions)
    expected = base_scores if kind == "full" else _scores(scorer, prompts, completions)
    assert scores == pytest.approx(expected, abs=1e-5)
    assert kind == "full" or scores != pytest.approx(base_scores, abs=1e-4)  # the adapter was merged in


def _scores(model, prompts, completions) -> list[float]:
    with torch.no_grad():
        rows = zip(prompts, completions, strict=True)
        return [model(input_ids=torch.tensor([prompt + completion])).logits[0, 0].item() for prompt, completion in rows]


def test_reward_model_keys_are_checked_at_parse_time():
    with pytest.raises(ConfigError, match="`reward_model_quantization_bit: 3`: bitsandbytes quantizes to 4 or 8"):
        stage_config("grpo", "reward_model=saves/rm", "reward_model_quantization_bit=3")
    with pytest.raises(ConfigError, match="`reward_model_type: api` takes the URL of a served reward model"):
        stage_config("grpo", "reward_model=saves/rm", "reward_model_type=api")
    with pytest.raises(ConfigError, match="describe a local reward model, not a served one"):
        stage_config(
            "grpo", "reward_model=http://h:8000/v1", "reward_model_type=api", "reward_model_quantization_bit=4"
        )
    with pytest.raises(
        ConfigError, match="`reward_model` describes a reward model, which lf-ray reads in `stage: grpo`"
    ):
        stage_config("sft", "reward_model=saves/rm")


def test_grpo_without_a_reward_is_stopped_before_training():
    from lf_ray.train.launcher import check_trainable

    cfg = stage_config("grpo", "reward_funcs=null")
    with pytest.raises(ConfigError, match="`stage: grpo` needs something to score completions"):
        check_trainable(cfg)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ([], {"use_vllm": False}),
        (
            ["infer_backend=vllm", "vllm_gpu_util=0.3", "vllm_maxlen=1024"],
            {
                "use_vllm": True,
                "vllm_mode": "colocate",
                "vllm_gpu_memory_utilization": 0.3,
                "vllm_max_model_length": 1024,
            },
        ),
        (
            ["grpo_vllm_server=http://10.0.0.7:8000"],
            {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://10.0.0.7:8000"},
        ),
    ],
)
def test_grpo_rollouts_are_sampled_by_vllm_colocated_or_on_a_server_when_asked(keys, expected, tmp_path):
    args = build_training_arguments(stage_config("grpo", *keys), output_dir=str(tmp_path))
    assert {key: getattr(args, key) for key in expected} == expected


def test_vllm_rollouts_are_refused_on_cpu_workers_and_vllm_stays_refused_for_other_stages():
    from lf_ray.train.launcher import training_problems

    problems = training_problems(stage_config("grpo", "infer_backend=vllm"))
    assert any(
        "`infer_backend: vllm` samples grpo's completions with vLLM, which needs CUDA workers" in p for p in problems
    )
    problems = training_problems(stage_config("grpo", "grpo_vllm_server=http://10.0.0.7:8000"))
    assert any(p.startswith("`grpo_vllm_server` samples grpo's completions with vLLM") for p in problems)
    with pytest.raises(ConfigError, match="pick two places for grpo's rollouts; keep one"):
        stage_config("grpo", "infer_backend=vllm", "grpo_vllm_server=http://10.0.0.7:8000")
    with pytest.raises(ConfigError, match="`infer_backend: vllm` is for serving and chat"):
        stage_config("sft", "infer_backend=vllm", "do_train=true")


def test_a_sweep_over_grpo_keys_plans_with_the_reward_as_its_metric(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "model_name_or_path: builtin:tiny-llama\nstage: grpo\ndataset_dir: builtin\ndataset: arithmetic_prompts\n"
        f"output_dir: {tmp_path / 'out'}\nreward_funcs: numeric_match\nmax_steps: 4\nsave_steps: 2\n"
        "tune:\n  param_space:\n    num_generations: {choice: [4, 8]}\n    grpo_beta: {uniform: [0.0, 0.1]}\n"
        "  num_samples: 2\n  metric: reward\n  mode: max\n  scheduler: asha\n"
    )
    assert main(["tune", str(config), "--dry-run"]) == 0
    assert "num_generations" in capsys.readouterr().out
