"""A reward model served over real HTTP (`stage: rm`: LLaMA-Factory's `/v1/score/evaluation` on Ray Serve), and
grpo scoring its completions with it (`reward_model_type: api`)."""

from __future__ import annotations

import pytest
import requests
import torch

from lf_ray.config import prepare_config
from lf_ray.serve.app import start_serve, stop_serve
from tests.conftest import free_port

pytestmark = pytest.mark.ray
TEXTS = ["<|begin_of_text|>What is 2 + 2?<|eot_id|>4<|eot_id|>", "<|begin_of_text|>Hello<|eot_id|>"]


@pytest.fixture(scope="module")
def reward_model(tiny_llama_path, tmp_path_factory):
    """A sequence classifier on the tiny Llama with a head that scores (what `stage: rm` saves in full)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_llama_path, num_labels=1)
    with torch.no_grad():
        model.score.weight.normal_(std=0.5)
    folder = tmp_path_factory.mktemp("rm") / "model"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_llama_path).save_pretrained(folder)
    return model.eval(), str(folder)


@pytest.fixture(scope="module")
def endpoint(ray_session, reward_model, tiny_llama_path):
    overrides = [
        f"model_name_or_path={reward_model[1]}",
        "stage=rm",
        "template=llama3",
        f"api_port={free_port()}",
        'ray_actor_options={"num_cpus": 0.5}',
        "serve_app_name=lf-ray-rm-test",
    ]
    ep = start_serve(prepare_config(None, overrides))
    yield ep
    stop_serve(ep)


def _expected(model, tokenizer, texts) -> list[float]:
    with torch.no_grad():
        rows = [tokenizer(text, add_special_tokens=False, return_tensors="pt") for text in texts]
        return [model(**row).logits[0, 0].item() for row in rows]


def test_the_served_reward_model_scores_texts_as_the_model_does(endpoint, reward_model):
    from transformers import AutoTokenizer

    model, folder = reward_model
    body = {"model": "anything", "messages": TEXTS}
    answer = requests.post(f"{endpoint.url}/score/evaluation", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    data = answer.json()
    assert data["object"] == "score.evaluation" and data["model"] == "anything" and data["id"].startswith("score-")
    assert data["scores"] == pytest.approx(_expected(model, AutoTokenizer.from_pretrained(folder), TEXTS), abs=1e-4)


def test_a_reward_model_does_not_chat_and_an_empty_request_is_refused(endpoint):
    chat = {"model": endpoint.base_model, "messages": [{"role": "user", "content": "hi"}]}
    answer = requests.post(f"{endpoint.url}/chat/completions", json=chat, timeout=60)
    assert answer.status_code == 405 and "is a reward model (`stage: rm`)" in answer.json()["error"]["message"]
    empty = requests.post(f"{endpoint.url}/score/evaluation", json={"model": "m", "messages": []}, timeout=60)
    assert empty.status_code == 422 and empty.json()["error"]["param"] == "messages"


def test_grpo_scores_completions_with_the_served_reward_model(endpoint, tiny_llama_path, tmp_path):
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.train.rewards import api_reward
    from tests.train.stage_runs import stage_config

    cfg = stage_config("grpo", f"reward_model={endpoint.url}", "reward_model_type=api")
    tokenizer, _ = tokenizer_spec(cfg).load()
    prompts, completions = [[tokenizer.bos_token_id, 300, 301], [tokenizer.bos_token_id, 400]], [[500, 501], [600]]
    scores = api_reward(endpoint.url, tokenizer, max_prompt_length=None)(input_ids=prompts, completion_ids=completions)
    texts = tokenizer.batch_decode(
        [p + c for p, c in zip(prompts, completions, strict=True)], skip_special_tokens=False
    )
    served = requests.post(f"{endpoint.url}/score/evaluation", json={"model": "m", "messages": texts}, timeout=60)
    assert scores == served.json()["scores"] and len(set(scores)) == 2


def test_a_grpo_trainer_logs_the_served_reward_models_scores(endpoint, tiny_llama_path, tmp_path):
    from lf_ray.data.tokenizer_spec import tokenizer_spec
    from lf_ray.model.loader import load_causal_lm
    from tests.train.stage_runs import lora, stage_config, train

    cfg = stage_config(
        "grpo", f"reward_model={endpoint.url}", "reward_model_type=api", "reward_funcs=null", "max_steps=2"
    )
    tokenizer, _ = tokenizer_spec(cfg).load()
    rows = [{"input_ids": [tokenizer.bos_token_id, 300 + i], "attention_mask": [1, 1], "labels": [7]} for i in range(8)]
    trainer = train(cfg, lora(load_causal_lm(tiny_llama_path)), tokenizer, rows, tmp_path)
    logged = [
        entry["rewards/reward_model/mean"]
        for entry in trainer.state.log_history
        if "rewards/reward_model/mean" in entry
    ]
    assert len(logged) == 2 and all(value != 0 for value in logged)


def test_chat_refuses_a_reward_model_and_serve_refuses_vllm_for_one(tmp_path, capsys):
    from lf_ray.cli import main
    from lf_ray.errors import ConfigError
    from lf_ray.serve.options import check_serve_config

    config = tmp_path / "rm.yaml"
    config.write_text("model_name_or_path: builtin:tiny-llama\nstage: rm\n")
    assert main(["chat", str(config), "--dry-run"]) == 2
    assert "`stage: rm` loads a reward model, which scores texts and does not chat" in capsys.readouterr().err
    cfg = prepare_config(None, ["model_name_or_path=builtin:tiny-llama", "stage=rm", "infer_backend=vllm"])
    with pytest.raises(ConfigError, match="`stage: rm` serves a reward model on the transformers engine"):
        check_serve_config(cfg)
