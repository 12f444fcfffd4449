"""The GPU check's CPU-side logic (`benchmarks/gpu_check.py`): its arithmetic, its verdicts, and a whole CPU run with
Ray unimportable, as on the GPU machines this project is lent."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from benchmarks.gpu_check import SHAPES, flops_per_token, loss_problem, matmul_params, mfu, peak_tflops

ROOT = Path(__file__).resolve().parents[1]


def _llama(**shape):
    return AutoConfig.for_model("llama", vocab_size=2055, tie_word_embeddings=False, **shape)


def test_matmul_weights_are_every_parameter_but_the_embeddings_and_norms():
    config = _llama(
        hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    products = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "norm" not in name)
    assert matmul_params(config) == products


def test_the_1b_shape_is_about_a_billion_parameters():
    assert matmul_params(_llama(**SHAPES["1b"])) == 973_092_864  # + 4.2 M of embeddings: 0.98 B


def test_flops_follow_palms_count():
    config = _llama(
        hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=8, num_key_value_heads=2
    )
    n, attention = matmul_params(config), 4 * 3 * 64 * 100  # one forward's attention at S = 100
    assert flops_per_token(config, 100, part="sft") == 4 * n + 3 * attention  # LoRA: no weight gradients
    assert flops_per_token(config, 100, part="qlora") == 4 * n + 3 * attention
    assert flops_per_token(config, 100, part="dpo") == 6 * n + 4 * attention  # + the reference's forward
    assert flops_per_token(config, 100, part="generate") == 2 * n + attention


def test_mfu_is_a_fraction_of_the_cards_peak():
    assert mfu(1_000.0, 4e11, 800.0) == pytest.approx(0.5)
    assert mfu(1_000.0, 4e11, None) is None
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H200") == 989.0 and peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA L40") == 181.0 and peak_tflops("NVIDIA L4") == 121.0
    assert peak_tflops("NVIDIA GeForce RTX 4090") is None and peak_tflops("cpu") is None


@pytest.mark.parametrize(
    ("losses", "problem"),
    [
        ([], "no loss was logged"),
        ([2.0, math.nan, 1.0], "the loss at step 2 is nan"),
        ([2.0, 1.5, math.inf], "the loss at step 3 is inf"),
        ([1.0, 1.01, 0.995, 0.995], "the loss did not fall: 1.0000 over the first 1 step(s), 0.9950 over the last 1"),
        ([0.69, 0.70, 0.71, 0.72, 0.70, 0.69, 0.70, 0.69], "the loss did not fall: 0.6950 over the first 2"),
    ],
)
def test_a_loss_that_is_not_finite_or_does_not_fall_is_a_problem(losses, problem):
    assert problem in loss_problem(losses)


def test_a_falling_loss_passes():
    assert loss_problem([7.6, 7.5, 7.3, 7.0]) is None
    assert loss_problem([0.693, 0.69, 0.667, 0.694, 0.636, 0.658, 0.613, 0.644]) is None  # noisy, but falling


def test_the_check_runs_on_a_cpu_without_ray(tmp_path):
    """The whole check on the tiny Llama: lf-ray's sft and dpo trainers and its serve engine, Ray unimportable."""
    out = tmp_path / "report.json"
    argv = ["--size", "tiny", "--device", "cpu", "--steps", "6", "--cutoff-len", "64", "--batch-size", "4"]
    argv += ["--parts", "sft", "dpo", "qlora", "generate", "--prompts", "4", "--new-tokens", "4", "--out", str(out)]
    code = (
        "import sys\n"
        "for name in ('ray', 'mlflow', 'deepspeed', 'gradio'):\n"
        "    sys.modules[name] = None  # `import ray` raises ImportError\n"
        "from benchmarks.gpu_check import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["environment"]["device"] == "cpu" and report["problems"] == []
    parts = report["parts"]
    for part in ("sft", "dpo"):
        assert parts[part]["steps_timed"] == 5 and parts[part]["tokens_per_s"] > 0, parts[part]
        assert parts[part]["last_loss"] < parts[part]["first_loss"] and parts[part]["dtype"] == "float32"
        assert parts[part]["mfu"] is None and parts[part]["peak_memory_gib"] is None  # no card, no peak
    assert parts["qlora"] == {"skipped": "needs CUDA and bitsandbytes (make gpu-wheels brings its wheel)"}
    assert parts["generate"]["tokens"] == 4 * 4
    assert "generate" in run.stdout and "tokens/s" in run.stdout
