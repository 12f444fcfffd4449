"""Every row of templates.yaml against the text LLaMA-Factory's template renders, and its ids against that text.

The expected strings were rendered by LLaMA-Factory's own `template.py` (its slots turned into text, bos / eos being
the tiny Llama tokenizer's) for a system prompt and two exchanges; baichuan2, orion, skywork_o1 and xverse follow
the definitions LLaMA-Factory had before it dropped them (#9736).
"""

from __future__ import annotations

import copy
import json

import pytest

from lf_ray.data.templates import _add_extra_special_tokens, get_template, resolve_template, template_table

MULTITURN = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Who are you?"},
    {"role": "assistant", "content": "I am Lumen."},
]
SYSTEM = "Be brief."
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"  # the tiny Llama tokenizer's

CHATML = (
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    "<|im_start|>user\nWho are you?<|im_end|>\n<|im_start|>assistant\nI am Lumen.<|im_end|>\n"
)
GEMMA = (
    f"{BOS}<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
    "<start_of_turn>user\nWho are you?<end_of_turn>\n<start_of_turn>model\nI am Lumen.<end_of_turn>\n"
)
GEMMA4 = (
    f"{BOS}<|turn>system\n<|think|>Be brief.<turn|>\n<|turn>user\nHi<turn|>\n<|turn>model\nHello!<turn|>\n"
    "<|turn>user\nWho are you?<turn|>\n<|turn>model\nI am Lumen.<turn|>\n"
)
GLM4 = (
    "[gMASK]<sop><|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello!<|user|>\nWho are you?<|assistant|>\nI am Lumen."
)
GRANITE = (
    "<|start_of_role|>system<|end_of_role|>Be brief.<|end_of_text|>\n<|start_of_role|>user<|end_of_role|>Hi"
    "<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>Hello!<|end_of_text|>\n<|start_of_role|>user"
    "<|end_of_role|>Who are you?<|end_of_text|>\n<|start_of_role|>assistant<|end_of_role|>I am Lumen.<|end_of_text|>\n"
)
LLAMA2 = (
    f"{BOS}[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!{EOS}{BOS}[INST] Who are you? [/INST]I am Lumen.{EOS}"
)
LLAMA3 = (
    f"{BOS}<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|><|start_header_id|>user<|end_header_id|>"
    "\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user"
    "<|end_header_id|>\n\nWho are you?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nI am Lumen.<|eot_id|>"
)
MINISTRAL = f"{BOS}[INST]Be brief.\n\nHi[/INST]Hello!{EOS}[INST]Who are you?[/INST]I am Lumen.{EOS}"
PHI = (
    "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nWho are you?<|end|>\n"
    "<|assistant|>\nI am Lumen.<|end|>\n"
)
SEED = (
    f"{BOS}system\nBe brief.{EOS}{BOS}user\nHi{EOS}{BOS}assistant\nHello!{EOS}{BOS}user\nWho are you?{EOS}"
    f"{BOS}assistant\nI am Lumen.{EOS}"
)

EXPECTED = {
    **dict.fromkeys(["aeva", "glm4", "glm4_7", "glm4_moe", "glmz1"], GLM4),
    **dict.fromkeys(
        ["chatml", "chatml_de", "dbrx", "lfm2", "mimo", "mimo_v2", "opencoder", "qwen", "qwen3", "qwen3_5"], CHATML
    ),
    **dict.fromkeys(["qwen3_5_nothink", "qwen3_6", "qwen3_nothink", "smollm", "smollm2", "yi"], CHATML),
    **dict.fromkeys(["cpm4", "falcon_h1", "intern2"], BOS + CHATML),
    **dict.fromkeys(["gemma", "gemma2", "gemma3", "gemma3n"], GEMMA),
    **dict.fromkeys(["gemma4", "gemma4n"], GEMMA4),
    **dict.fromkeys(["granite3", "granite4"], GRANITE),
    **dict.fromkeys(["llama2", "llama2_zh"], LLAMA2),
    **dict.fromkeys(["llama3", "skywork_o1"], LLAMA3),
    **dict.fromkeys(["ministral", "ministral3"], MINISTRAL),
    **dict.fromkeys(["seed_coder", "seed_oss"], SEED),
    "phi": PHI,
    "phi_small": "<|endoftext|>" + PHI,  # LLaMA-Factory's slot ({"<|endoftext|>"}, a set) writes nothing
    **dict.fromkeys(
        ["deepseek3", "deepseekr1"],
        f"{BOS}Be brief.<｜User｜>Hi<｜Assistant｜>Hello!{EOS}<｜User｜>Who are you?<｜Assistant｜>I am Lumen.{EOS}",
    ),
    "alpaca": (
        f"Be brief.### Instruction:\nHi\n\n### Response:\nHello!{EOS}\n\n### Instruction:\nWho are you?\n\n"
        f"### Response:\nI am Lumen.{EOS}\n\n"
    ),
    "baichuan2": "Be brief.<reserved_106>Hi<reserved_107>Hello!<reserved_106>Who are you?<reserved_107>I am Lumen.",
    "bailing": (
        "<role>SYSTEM</role>Be brief.<role>HUMAN</role>Hi<role>ASSISTANT</role>Hello!<role>HUMAN</role>Who are you?"
        "<role>ASSISTANT</role>I am Lumen."
    ),
    "bailing_v2": (
        "<role>SYSTEM</role>Be brief.<|role_end|><role>HUMAN</role>Hi<|role_end|><role>ASSISTANT</role>Hello!"
        "<|role_end|><role>HUMAN</role>Who are you?<|role_end|><role>ASSISTANT</role>I am Lumen.<|role_end|>"
    ),
    "breeze": f"{BOS}Be brief.[INST] Hi [/INST] Hello![INST] Who are you? [/INST] I am Lumen.",
    "chatglm3": "[gMASK]sop<|system|>\nBe brief.<|user|>\nHi<|assistant|>\nHello!<|user|>\nWho are you?<|assistant|>"
    "\nI am Lumen.",
    "cohere": (
        f"{BOS}<|START_OF_TURN_TOKEN|><|SYSTEM_TOKEN|>Be brief.<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|>"
        f"<|USER_TOKEN|>Hi<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>Hello!{EOS}"
        "<|START_OF_TURN_TOKEN|><|USER_TOKEN|>Who are you?<|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"
        f"I am Lumen.{EOS}"
    ),
    "deepseek": f"{BOS}Be brief.\n\nUser: Hi\n\nAssistant:Hello!{EOS}User: Who are you?\n\nAssistant:I am Lumen.{EOS}",
    "deepseekcoder": (
        f"{BOS}Be brief.### Instruction:\nHi\n### Response:\nHello!\n<|EOT|>\n### Instruction:\nWho are you?\n"
        "### Response:\nI am Lumen.\n<|EOT|>\n"
    ),
    "default": (
        f"System: Be brief.{EOS}\nHuman: Hi{EOS}\nAssistant:Hello!{EOS}\nHuman: Who are you?{EOS}\n"
        f"Assistant:I am Lumen.{EOS}\n"
    ),
    "empty": "Be brief.HiHello!Who are you?I am Lumen.",
    "ernie": (
        "<|im_start|>system\nBe brief.<|im_end|>\n\n<|im_start|>user\nHi<|im_end|>\n\n<|im_start|>assistant\nHello!"
        "<|im_end|>\n\n<|im_start|>user\nWho are you?<|im_end|>\n\n<|im_start|>assistant\nI am Lumen.<|im_end|>\n\n"
    ),
    "ernie_nothink": (
        "<|begin_of_sentence|>Be brief.\nUser: Hi\nAssistant: Hello!<|end_of_sentence|>User: Who are you?\n"
        "Assistant: I am Lumen.<|end_of_sentence|>"
    ),
    "exaone": (
        f"[|system|]Be brief.[|endofturn|]\n[|user|]Hi\n[|assistant|]Hello!{EOS}\n[|user|]Who are you?\n"
        f"[|assistant|]I am Lumen.{EOS}\n"
    ),
    "falcon": "Be brief.User: Hi\nFalcon:Hello!\nUser: Who are you?\nFalcon:I am Lumen.\n",
    "fewshot": "Be brief.HiHello!\n\nWho are you?I am Lumen.\n\n",
    "gpt_oss": (
        "<|start|>system<|message|>Be brief.<|end|><|start|>user<|message|>Hi<|end|><|start|>assistantHello!"
        "<|start|>user<|message|>Who are you?<|end|><|start|>assistantI am Lumen."
    ),
    "hunyuan": "<|startoftext|>Be brief.<|extra_4|>Hi<|extra_0|>Hello!<|eos|>Who are you?<|extra_0|>I am Lumen.<|eos|>",
    "hunyuan_small": (
        "<｜hy_begin▁of▁sentence｜>Be brief.<｜hy_place▁holder▁no▁3｜><｜hy_User｜>Hi<｜hy_place▁holder▁no▁8｜>"
        "Hello!<｜hy_place▁holder▁no▁2｜><｜hy_User｜>Who are you?<｜hy_place▁holder▁no▁8｜>I am Lumen."
        "<｜hy_place▁holder▁no▁2｜>"
    ),
    "hy3": (
        f"{BOS}Be brief.<｜hy_User｜>Hi<｜hy_Assistant｜>Hello!<｜hy_eos｜><｜hy_User｜>Who are you?<｜hy_Assistant｜>"
        "I am Lumen.<｜hy_eos｜>"
    ),
    "hy_dense_1_8b": (
        f"{BOS}Be brief.<｜hy_place▁holder▁no▁3｜><｜hy_User｜>Hi<｜hy_Assistant｜>Hello!<｜hy_User｜>Who are you?"
        "<｜hy_Assistant｜>I am Lumen."
    ),
    "hy_dense_7b": f"{BOS}Be brief.<|extra_4|>Hi<|extra_0|>Hello!Who are you?<|extra_0|>I am Lumen.",
    "index": "<unk>Be brief.reserved_0Hireserved_1Hello!reserved_0Who are you?reserved_1I am Lumen.",
    "llama4": (
        f"{BOS}<|header_start|>system<|header_end|>\n\nBe brief.<|eot|><|header_start|>user<|header_end|>\n\nHi<|eot|>"
        "<|header_start|>assistant<|header_end|>\n\nHello!<|eot|><|header_start|>user<|header_end|>\n\nWho are you?"
        "<|eot|><|header_start|>assistant<|header_end|>\n\nI am Lumen.<|eot|>"
    ),
    "minimax1": (
        "<beginning_of_sentence>system ai_setting=assistant\nBe brief.<end_of_sentence>\n"
        "<beginning_of_sentence>user name=user\nHi<end_of_sentence>\n<beginning_of_sentence>ai name=assistant\n"
        "Hello!<end_of_sentence>\n<beginning_of_sentence>user name=user\nWho are you?<end_of_sentence>\n"
        "<beginning_of_sentence>ai name=assistant\nI am Lumen.<end_of_sentence>\n"
    ),
    "minimax2": (
        "]~!b[]~b]system\nBe brief.[e~[\n]~b]user\nHi[e~[\n]~b]ai\nHello![e~[\n]~b]user\nWho are you?[e~[\n]~b]ai\n"
        "I am Lumen.[e~[\n"
    ),
    "mistral": f"{BOS}[INST] Be brief.\n\nHi[/INST] Hello!{EOS}[INST] Who are you?[/INST] I am Lumen.{EOS}",
    "mistral_small": (
        f"{BOS}[SYSTEM_PROMPT]Be brief.[/SYSTEM_PROMPT][INST]Hi[/INST]Hello!{EOS}[INST]Who are you?[/INST]"
        f"I am Lumen.{EOS}"
    ),
    "moonlight": (
        "<|im_system|>system<|im_middle|>Be brief.<|im_end|><|im_user|>user<|im_middle|>Hi<|im_end|><|im_assistant|>"
        "assistant<|im_middle|>Hello!<|im_end|><|im_user|>user<|im_middle|>Who are you?<|im_end|><|im_assistant|>"
        "assistant<|im_middle|>I am Lumen.<|im_end|>"
    ),
    "olmo": f"{EOS}Be brief.<|user|>\nHi<|assistant|>\nHello!{EOS}<|user|>\nWho are you?<|assistant|>\n"
    f"I am Lumen.{EOS}",
    "openchat": (
        f"{BOS}Be brief.GPT4 Correct User: Hi{EOS}GPT4 Correct Assistant:Hello!{EOS}GPT4 Correct User: Who are you?"
        f"{EOS}GPT4 Correct Assistant:I am Lumen.{EOS}"
    ),
    "openchat-3.6": (
        f"{BOS}Be brief.<|start_header_id|>GPT4 Correct User<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>"
        f"GPT4 Correct Assistant<|end_header_id|>\n\nHello!{EOS}<|start_header_id|>GPT4 Correct User<|end_header_id|>"
        f"\n\nWho are you?<|eot_id|><|start_header_id|>GPT4 Correct Assistant<|end_header_id|>\n\nI am Lumen.{EOS}"
    ),
    "orion": (
        f"{BOS}Be brief.Human: Hi\n\nAssistant: {EOS}Hello!{EOS}Human: Who are you?\n\nAssistant: {EOS}I am Lumen.{EOS}"
    ),
    "phi4": (
        "<|im_start|>system<|im_sep|>Be brief.<|im_end|><|im_start|>user<|im_sep|>Hi<|im_end|><|im_start|>assistant"
        "<|im_sep|>Hello!<|im_end|><|im_start|>user<|im_sep|>Who are you?<|im_end|><|im_start|>assistant<|im_sep|>"
        "I am Lumen.<|im_end|>"
    ),
    "phi4_mini": (
        "<|system|>Be brief.<|end|><|user|>Hi<|end|><|assistant|>Hello!<|end|><|user|>Who are you?<|end|>"
        "<|assistant|>I am Lumen.<|end|>"
    ),
    "sailor": (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>question\nHi<|im_end|>\n<|im_start|>answer\nHello!"
        "<|im_end|>\n<|im_start|>question\nWho are you?<|im_end|>\n<|im_start|>answer\nI am Lumen.<|im_end|>\n"
    ),
    "solar": "### System:\nBe brief.\n\n### User:\nHi\n\n### Assistant:\nHello!### User:\nWho are you?\n\n"
    "### Assistant:\nI am Lumen.",
    "starchat": (
        "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>Hello!<|end|>\n<|user|>\nWho are you?<|end|>\n"
        "<|assistant|>I am Lumen.<|end|>\n"
    ),
    "telechat2": f"<_system>Be brief.<_user>Hi<_bot>Hello!{EOS}<_user>Who are you?<_bot>I am Lumen.{EOS}",
    "vicuna": f"Be brief.USER: Hi ASSISTANT:Hello!{EOS}USER: Who are you? ASSISTANT:I am Lumen.{EOS}",
    "xuanyuan": f"Be brief.Human: Hi Assistant:Hello!{EOS}Human: Who are you? Assistant:I am Lumen.{EOS}",
    "xverse": f"Be brief.Human: Hi\n\nAssistant: Hello!{EOS}Human: Who are you?\n\nAssistant: I am Lumen.{EOS}",
    "youtu": f"{BOS}Be brief.<|User|>Hi<|Assistant|>Hello!{EOS}<|User|>Who are you?<|Assistant|>I am Lumen.{EOS}",
    "yuan": "Be brief.Hi<sep>Hello!<eod>\nWho are you?<sep>I am Lumen.<eod>\n",
    "zephyr": (
        f"<|system|>\nBe brief.{EOS}<|user|>\nHi{EOS}<|assistant|>\nHello!{EOS}<|user|>\nWho are you?{EOS}"
        f"<|assistant|>\nI am Lumen.{EOS}"
    ),
}


@pytest.fixture(scope="module")
def base_tokenizer(tiny_llama_path):
    from lf_ray.model.loader import load_tokenizer

    tokenizer = load_tokenizer(tiny_llama_path)
    assert (tokenizer.bos_token, tokenizer.eos_token) == (BOS, EOS)
    return tokenizer


def test_every_template_has_an_expected_text():
    assert set(EXPECTED) == set(template_table())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_text_is_llama_factorys(base_tokenizer, name):
    assert get_template(name).render(base_tokenizer, MULTITURN, system=SYSTEM) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_ids_spell_the_text(base_tokenizer, name):
    """On a tokenizer that has the template's control tokens (as the model's does), the training ids decode to the
    rendered text; reasoning templates get answers that already hold a thought, so none is added."""
    tokenizer = copy.deepcopy(base_tokenizer)
    _add_extra_special_tokens(tokenizer, get_template(name).special_tokens_used())
    template = resolve_template(tokenizer, name)
    messages = MULTITURN
    if template.reasoning:
        thought = template.thought_words[0] + "hm" + template.thought_words[1]
        messages = [{**m, "content": thought + m["content"]} if i % 2 else m for i, m in enumerate(MULTITURN)]
    pairs = template.encode_multiturn(tokenizer, messages, SYSTEM)
    ids = [token for prompt, answer in pairs for token in prompt + answer]
    assert tokenizer.decode(ids, skip_special_tokens=False) == template.render(tokenizer, messages, system=SYSTEM)


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("gemma4", "<|turn>system\n<|think|>You are a helpful assistant.<turn|>\n"),
        ("granite4", "<|start_of_role|>system<|end_of_role|>You are Granite, developed by IBM. You are a helpful AI"),
        ("intern2", "<|im_start|>system\nYou are an AI assistant whose name is InternLM (书生·浦语).\n- InternLM"),
        ("lfm2", "<|im_start|>system\nYou are a helpful AI assistant.<|im_end|>\n"),
        ("mimo_v2", "<|im_start|>system\nYou are MiMo, a helpful AI assistant engineered by Xiaomi.<|im_end|>\n"),
        (
            "minimax2",
            "]~!b[]~b]system\nYou are a helpful assistant. Your name is MiniMax-M2.1 and is built by MiniMax.",
        ),
        ("moonlight", "<|im_system|>system<|im_middle|>You are a helpful assistant provided by Moonshot-AI.<|im_end|>"),
        ("telechat2", "<_system>你是中国电信星辰语义大模型，英文名是TeleChat，"),
    ],
)
def test_default_system(base_tokenizer, name, start):
    rendered = get_template(name).render(base_tokenizer, MULTITURN[:2])
    assert rendered.removeprefix(BOS).startswith(start)


# --- thoughts ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("glm4_7", "</think>\nHello!"),  # only the closing tag, before the assistant slot's newline
        ("glm4_moe", "<think>\n\n</think>\n\n\nHello!"),
        ("gpt_oss", "<|channel|>analysis<|message|><|end|><|start|>assistant<|channel|>final<|message|>Hello!"),
        ("gemma4", "<|channel>thought\n<channel|>Hello!<turn|>\n"),
        ("seed_oss", f"<seed:think></seed:think>Hello!{EOS}"),
    ],
)
def test_empty_thought_opens_the_answer(base_tokenizer, name, answer):
    tokenizer = copy.deepcopy(base_tokenizer)
    template = resolve_template(tokenizer, name, resize_vocab=True)
    _, response = template.encode_oneturn(tokenizer, MULTITURN[:2])
    assert tokenizer.decode(response, skip_special_tokens=False) == answer


def test_empty_thought_goes_to_the_prompt_without_thinking(base_tokenizer):
    tokenizer = copy.deepcopy(base_tokenizer)
    template = resolve_template(tokenizer, "glm4_7", resize_vocab=True, enable_thinking=False)
    prompt, response = template.encode_oneturn(tokenizer, MULTITURN[:2])
    assert tokenizer.decode(prompt, skip_special_tokens=False).endswith("<|assistant|></think>")
    assert tokenizer.decode(response, skip_special_tokens=False) == "\nHello!"


# --- tools -------------------------------------------------------------------------------------------------

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Get the current weather",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "City name"}},
        "required": ["city"],
    },
}
TOOLS = json.dumps([WEATHER_TOOL])
TOOL_CONVERSATION = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "function", "content": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
    {"role": "observation", "content": '{"temperature": 18}'},
    {"role": "assistant", "content": "It is 18 degrees."},
]


def test_glm4_tool_conversation(base_tokenizer):
    assert get_template("glm4").render(base_tokenizer, TOOL_CONVERSATION, tools=TOOLS) == (
        "[gMASK]<sop><|system|>\n你是一个名为 ChatGLM 的人工智能助手。"
        "你是基于智谱 AI 公司训练的语言模型 GLM-4 模型开发的，"
        "你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具\n\n## get_weather\n\n"
        f"{json.dumps(WEATHER_TOOL, indent=4)}\n在调用上述函数时，请使用 Json 格式表示调用的参数。"
        '<|user|>\nWeather in Paris?<|assistant|>get_weather\n{"city": "Paris"}<|observation|>\n{"temperature": 18}'
        "<|assistant|>\nIt is 18 degrees."
    )


def test_lfm2_tool_conversation(base_tokenizer):
    assert get_template("lfm2").render(base_tokenizer, TOOL_CONVERSATION, tools=TOOLS) == (
        "<|im_start|>system\nYou are a helpful AI assistant.List of tools: <|tool_list_start|>"
        f"{TOOLS}<|tool_list_end|><|im_end|>\n<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n"
        '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|><|im_end|>\n<|im_start|>tool\n'
        '<|tool_response_start|>{"temperature": 18}<|tool_response_end|><|im_end|>\n<|im_start|>assistant\n'
        "It is 18 degrees.<|im_end|>\n"
    )


def test_gemma4_tool_call_sits_in_the_tool_slot(base_tokenizer):
    text = get_template("gemma4").render(base_tokenizer, TOOL_CONVERSATION, tools=TOOLS)
    assert '<turn|>\n<|turn>model\n<|tool><|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><tool|>' in text
    assert '<|turn>tool\n{"temperature": 18}<turn|>\n<|turn>model\nIt is 18 degrees.<turn|>\n' in text


def test_seed_oss_tool_call_is_its_own_bos_eos_turn(base_tokenizer):
    text = get_template("seed_oss").render(base_tokenizer, TOOL_CONVERSATION, tools=TOOLS)
    assert text.startswith(f"{BOS}system\nsystem\nYou are Doubao, a helpful AI assistant.")
    assert (
        f"{BOS}assistant\n{BOS}\n\n<seed:tool_call>\n<function=get_weather\n<parameter=city>Paris</parameter>\n"
        f"</function>\n</seed:tool_call>{EOS}{BOS}user\n" + '{"temperature": 18}'
    ) in text


def test_phi4_mini_writes_the_tools_json_as_given(base_tokenizer):
    tools = '[{"name": "get_weather"}]'  # as the dataset spells it, not re-serialized
    text = get_template("phi4_mini").render(base_tokenizer, TOOL_CONVERSATION, system="S", tools=tools)
    assert text.startswith('<|system|>S<|tool|>[{"name": "get_weather"}]<|/tool|><|end|><|user|>Weather in Paris?')
    assert '<|assistant|>Action: get_weather\nAction Input: {"city": "Paris"}<|end|>' in text
