"""alpaca / sharegpt / openai rows → LLaMA-Factory's aligned (canonical) rows; broken rows are dropped with a reason."""

from __future__ import annotations

import json

import pytest

from lf_ray.data.converters import check_columns, convert_alpaca, convert_rows, convert_sharegpt
from lf_ray.data.registry import parse_entry
from lf_ray.errors import DataError

ALPACA = parse_entry("alp", {"file_name": "alp.json"})
SHAREGPT = parse_entry("chat", {"file_name": "chat.json", "formatting": "sharegpt"})
OPENAI = parse_entry("oa", {"file_name": "oa.jsonl", "formatting": "openai"})
DPO = parse_entry(
    "dpo",
    {
        "file_name": "dpo.json",
        "formatting": "sharegpt",
        "ranking": True,
        "columns": {"messages": "conversations", "chosen": "chosen", "rejected": "rejected"},
    },
)
KTO = parse_entry(
    "kto",
    {
        "file_name": "kto.json",
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "kto_tag": "label"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    },
)


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def canonical(prompt, response, system="", tools="", origin="o", drop_reason=None) -> dict:
    return {
        "_prompt": prompt,
        "_response": response,
        "_system": system,
        "_tools": tools,
        "_origin": origin,
        "_drop_reason": drop_reason,
    }


def dropped(reason: str) -> dict:
    return canonical([], [], drop_reason=reason)


# ---- alpaca -------------------------------------------------------------------------------------------------------


def test_alpaca_matches_lf_converter_test():
    row = {"instruction": "Solve the math problem.", "input": "3 + 4", "output": "The answer is 7."}
    assert convert_alpaca(ALPACA, row, "o") == canonical(
        [user("Solve the math problem.\n3 + 4")], [assistant("The answer is 7.")]
    )


def test_alpaca_empty_input_is_not_joined():
    row = {"instruction": "Say hi.", "input": "", "output": "Hi!"}
    assert convert_alpaca(ALPACA, row, "o")["_prompt"] == [user("Say hi.")]


def test_alpaca_with_history_system_and_tools():
    attr = parse_entry(
        "alp",
        {
            "file_name": "alp.json",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "history": "history",
                "system": "system",
                "tools": "tools",
            },
        },
    )
    tools = [{"name": "add", "description": "Add numbers", "parameters": {"type": "object", "properties": {}}}]
    row = {
        "instruction": "And 3 + 4?",
        "input": "",
        "output": "7",
        "history": [["What is 1 + 1?", "2"], ["And 2 + 2?", "4"]],
        "system": "You are a calculator.",
        "tools": tools,
    }
    assert convert_alpaca(attr, row, "o") == canonical(
        [user("What is 1 + 1?"), assistant("2"), user("And 2 + 2?"), assistant("4"), user("And 3 + 4?")],
        [assistant("7")],
        system="You are a calculator.",
        tools=json.dumps(tools, ensure_ascii=False),
    )


def test_alpaca_bad_history_turn_is_dropped_with_reason():
    attr = parse_entry("alp", {"file_name": "a.json", "columns": {"prompt": "instruction", "history": "history"}})
    row = {"instruction": "q", "history": [["only one"]]}
    assert convert_alpaca(attr, row, "o") == dropped("history turn is not a [query, answer] pair")


def test_alpaca_without_response_is_unsupervised():
    attr = parse_entry("c4", {"file_name": "c4.jsonl", "columns": {"prompt": "text"}})
    assert convert_alpaca(attr, {"text": "A document."}, "o") == canonical([user("A document.")], [])


def test_alpaca_pairwise():
    attr = parse_entry(
        "dpo",
        {
            "file_name": "dpo.json",
            "ranking": True,
            "columns": {"prompt": "instruction", "chosen": "chosen", "rejected": "rejected"},
        },
    )
    row = {"instruction": "2 + 2?", "chosen": "4", "rejected": "5"}
    assert convert_alpaca(attr, row, "o") == canonical([user("2 + 2?")], [assistant("4"), assistant("5")])


@pytest.mark.parametrize(
    ("label", "response"), [(True, [assistant("4"), assistant("")]), (False, [assistant(""), assistant("4")])]
)
def test_alpaca_kto_tag(label, response):
    attr = parse_entry(
        "kto", {"file_name": "k.json", "columns": {"prompt": "instruction", "response": "output", "kto_tag": "label"}}
    )
    row = {"instruction": "2 + 2?", "output": "4", "label": label}
    assert convert_alpaca(attr, row, "o") == canonical([user("2 + 2?")], response)


# ---- sharegpt -----------------------------------------------------------------------------------------------------


def test_sharegpt_matches_lf_converter_test():
    row = {
        "conversations": [
            {"from": "system", "value": "You are a helpful assistant."},
            {"from": "human", "value": "Solve the math problem.\n3 + 4"},
            {"from": "gpt", "value": "The answer is 7."},
        ]
    }
    assert convert_sharegpt(SHAREGPT, row, "o") == canonical(
        [user("Solve the math problem.\n3 + 4")], [assistant("The answer is 7.")], system="You are a helpful assistant."
    )


def test_sharegpt_multiturn_with_function_call_and_observation():
    attr = parse_entry(
        "glaive",
        {"file_name": "g.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "tools": "tools"}},
    )
    call = '{"name": "add", "arguments": {"a": 2, "b": 3}}'
    row = {
        "conversations": [
            {"from": "human", "value": "Add 2 and 3."},
            {"from": "function_call", "value": call},
            {"from": "observation", "value": '{"result": 5}'},
            {"from": "gpt", "value": "It is 5."},
        ],
        "tools": '[{"name": "add"}]',
    }
    assert convert_sharegpt(attr, row, "o") == canonical(
        [
            user("Add 2 and 3."),
            {"role": "function", "content": call},
            {"role": "observation", "content": '{"result": 5}'},
        ],
        [assistant("It is 5.")],
        tools='[{"name": "add"}]',
    )


def test_sharegpt_system_column_is_used_without_a_system_message():
    attr = parse_entry(
        "chat",
        {"file_name": "c.json", "formatting": "sharegpt", "columns": {"messages": "conversations", "system": "sys"}},
    )
    row = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "sys": "Be brief."}
    assert convert_sharegpt(attr, row, "o") == canonical([user("hi")], [assistant("hello")], system="Be brief.")


def test_non_alternating_conversation_is_dropped_not_raised():
    row = {
        "conversations": [
            {"from": "human", "value": "a"},
            {"from": "human", "value": "b"},
            {"from": "gpt", "value": "c"},
        ]
    }
    assert convert_sharegpt(SHAREGPT, row, "o") == dropped(
        "message 1 has role `human` where function_call or gpt must come (turns must alternate)"
    )


def test_conversation_starting_with_the_assistant_is_dropped():
    row = {"conversations": [{"from": "gpt", "value": "a"}, {"from": "human", "value": "b"}]}
    assert convert_sharegpt(SHAREGPT, row, "o") == dropped(
        "message 0 has role `gpt` where human or observation must come (turns must alternate)"
    )


def test_odd_message_count_is_dropped():
    row = {
        "conversations": [
            {"from": "human", "value": "a"},
            {"from": "gpt", "value": "b"},
            {"from": "human", "value": "c"},
        ]
    }
    assert convert_sharegpt(SHAREGPT, row, "o") == dropped("3 messages: a conversation needs user/assistant pairs")


def test_messages_that_are_not_a_list_are_dropped():
    assert convert_sharegpt(SHAREGPT, {"conversations": "hi"}, "o") == dropped(
        "`conversations` is not a list of messages"
    )


def test_sharegpt_pairwise_chosen_rejected():
    row = {
        "conversations": [{"from": "human", "value": "2 + 2?"}],
        "chosen": {"from": "gpt", "value": "4"},
        "rejected": {"from": "gpt", "value": "5"},
    }
    assert convert_sharegpt(DPO, row, "o") == canonical([user("2 + 2?")], [assistant("4"), assistant("5")])


def test_sharegpt_pairwise_with_an_even_prompt_is_dropped():
    row = {
        "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}],
        "chosen": {"from": "gpt", "value": "4"},
        "rejected": {"from": "gpt", "value": "5"},
    }
    assert convert_sharegpt(DPO, row, "o") == dropped(
        "2 messages: a conversation needs user/assistant pairs ending with a user turn (pairwise)"
    )


@pytest.mark.parametrize("rejected", ["5", {"from": "human", "value": "5"}])
def test_sharegpt_pairwise_answers_must_be_assistant_messages(rejected):
    row = {
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "4"},
        "rejected": rejected,
    }
    assert convert_sharegpt(DPO, row, "o") == dropped(
        "chosen / rejected must be messages with role function_call or gpt"
    )


@pytest.mark.parametrize(
    ("label", "response"), [(True, [assistant("4"), assistant("")]), (False, [assistant(""), assistant("4")])]
)
def test_sharegpt_kto_tag(label, response):
    row = {"messages": [{"role": "user", "content": "2 + 2?"}, {"role": "assistant", "content": "4"}], "label": label}
    assert convert_sharegpt(KTO, row, "o") == canonical([user("2 + 2?")], response)


def test_kto_tags_reset_system_tag_so_a_system_message_breaks_alternation():
    """With `tags` given and no `system_tag`, LF does not lift a leading system message out of the conversation."""
    row = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
        "label": True,
    }
    assert convert_sharegpt(KTO, row, "o")["_drop_reason"] == (
        "message 0 has role `system` where user must come (turns must alternate)"
    )


# ---- openai -------------------------------------------------------------------------------------------------------


def tool_call(name: str, arguments: object) -> dict:
    return {"id": f"call_{name}", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_openai_with_system_tool_calls_and_tool_results():
    row = {
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call("weather", '{"city": "Paris"}')]},
            {"role": "tool", "tool_call_id": "call_weather", "content": "sunny"},
            {"role": "assistant", "content": "It is sunny."},
        ]
    }
    assert convert_sharegpt(OPENAI, row, "o") == canonical(
        [
            user("Weather in Paris?"),
            {"role": "function", "content": json.dumps({"name": "weather", "arguments": {"city": "Paris"}})},
            {"role": "observation", "content": "sunny"},
        ],
        [assistant("It is sunny.")],
        system="You can call tools.",
    )


def test_openai_several_tool_calls_become_one_function_message_with_a_list():
    row = {
        "messages": [
            {"role": "user", "content": "Time and weather?"},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [tool_call("time", ""), tool_call("weather", '{"c": 1}')],
            },
        ]
    }
    calls = [{"name": "time", "arguments": {}}, {"name": "weather", "arguments": {"c": 1}}]
    assert convert_sharegpt(OPENAI, row, "o")["_response"] == [{"role": "function", "content": json.dumps(calls)}]


def test_openai_tool_call_arguments_given_as_an_object():
    """Many chat datasets (and transformers chat templates) store `arguments` as an object, not a JSON string."""
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call("weather", {"city": "Paris"})]},
        ]
    }
    response = convert_sharegpt(OPENAI, row, "o")["_response"]
    assert [json.loads(message["content"]) for message in response] == [
        {"name": "weather", "arguments": {"city": "Paris"}}
    ]


def test_openai_tool_call_with_malformed_arguments_is_dropped_not_raised():
    row = {
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [tool_call("weather", '{"city": ')]},
        ]
    }
    result = convert_sharegpt(OPENAI, row, "o")
    assert result["_prompt"] == [] and result["_response"] == []
    assert "arguments" in result["_drop_reason"]


# ---- columns and whole-file conversion ----------------------------------------------------------------------------


def test_wrong_column_mapping_names_the_column_and_what_the_rows_have():
    with pytest.raises(DataError) as caught:
        check_columns(ALPACA, [{"question": "q", "answer": "a"}], "qa.json")
    assert str(caught.value) == (
        "dataset `alp` (qa.json): column `instruction` (its `prompt` column) is not in the data; "
        "the rows have: answer, question. Fix `columns` in dataset_info.json"
    )


def test_explicitly_mapped_column_must_exist():
    attr = parse_entry("alp", {"file_name": "a.json", "columns": {"prompt": "q", "system": "sys"}})
    check_columns(attr, [{"q": "x", "sys": "s"}], "a.json")
    with pytest.raises(DataError, match=r"column `sys` \(its `system` column\) is not in the data; the rows have: q\."):
        check_columns(attr, [{"q": "x"}], "a.json")


def test_default_optional_columns_may_be_absent():
    check_columns(ALPACA, [{"instruction": "x"}], "a.json")  # input / output are LF defaults, not required


def test_sharegpt_messages_column_must_exist():
    with pytest.raises(DataError, match=r"column `conversations` \(its `messages` column\) is not in the data"):
        check_columns(SHAREGPT, [{"messages": []}], "c.json")


def test_sharegpt_columns_without_messages_is_a_mapping_error():
    """`columns` resets `messages` to None when not named; every row would then convert to an empty conversation."""
    attr = parse_entry("chat", {"file_name": "c.json", "formatting": "sharegpt", "columns": {"tools": "tools"}})
    rows = [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}], "tools": ""}]
    with pytest.raises(DataError, match="`messages`"):
        convert_rows(attr, rows, "c.json")


def test_convert_rows_sets_origin_per_row_and_keeps_dropped_rows():
    rows = [
        {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        {"conversations": [{"from": "human", "value": "hi"}]},
    ]
    converted = convert_rows(SHAREGPT, rows, "chat.json")
    assert converted == [
        canonical([user("hi")], [assistant("hello")], origin="chat.json row 1"),
        canonical(
            [], [], origin="chat.json row 2", drop_reason="1 messages: a conversation needs user/assistant pairs"
        ),
    ]


def test_convert_rows_refuses_an_empty_source():
    with pytest.raises(DataError, match=r"dataset `alp` \(empty\.json\) has no rows; check the file"):
        convert_rows(ALPACA, [], "empty.json")


def test_non_string_content_becomes_json_text():
    row = {"conversations": [{"from": "human", "value": {"q": "é"}}, {"from": "gpt", "value": 7}]}
    result = convert_sharegpt(SHAREGPT, row, "o")
    assert result["_prompt"] == [user('{"q": "é"}')]
    assert result["_response"] == [assistant("7")]
