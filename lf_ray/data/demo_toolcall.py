"""The `glaive_toolcall_en_demo` generator: tool-calling conversations in LLaMA-Factory's glaive format
(function_call / observation turns, `tools` as a JSON string), from the tables in `demo_tool_content.py`."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable, Iterable

from lf_ray.data import demo_tool_content as tool_content
from lf_ray.data.demo_rows import Row, seeded_rng, sharegpt_turns

# --- glaive_toolcall_en_demo ----------------------------------------------------------------------------------
# A tool task is (human prompt, tool name, arguments, observation, final answer).

ToolTask = tuple[str, str, Row, Row, str]


def _num(x: float) -> int | float:
    """2.0 → 2, 2.5 → 2.5: whole numbers print and serialize without a trailing .0."""
    return int(x) if float(x).is_integer() else x


def _weather_task(rng: random.Random, city: str) -> ToolTask:
    fahrenheit = rng.random() < 0.3
    celsius = rng.randint(-5, 32)
    temperature = round(celsius * 9 / 5 + 32) if fahrenheit else celsius
    conditions = tool_content.COLD_CONDITIONS if celsius <= 1 else tool_content.MILD_CONDITIONS
    (condition, described), humidity = rng.choice(conditions), rng.randint(30, 90)
    unit = "fahrenheit" if fahrenheit else "celsius"
    prompt = rng.choice(tool_content.WEATHER_PROMPTS).format(city=city) + (
        " In Fahrenheit, please." if fahrenheit else ""
    )
    arguments = {"city": city, "unit": unit} if fahrenheit else {"city": city}
    observation = {"city": city, "temperature": temperature, "unit": unit, "condition": condition,
                   "humidity": humidity}  # fmt: skip
    answer = f"It's currently {temperature}°{unit[0].upper()} and {described} in {city}, with {humidity}% humidity."
    return prompt, "get_current_weather", arguments, observation, answer


def _calculation(rng: random.Random) -> tuple[str, int]:
    a, b, c = rng.randint(2, 30), rng.randint(2, 12), rng.randint(1, 50)
    form = rng.randrange(4)
    if form == 0:
        return f"{a} * {b} + {c}", a * b + c
    if form == 1:
        return f"({a} + {c}) * {b}", (a + c) * b
    if form == 2:
        return f"{a * b} / {b}", a
    return f"{c} - {a} * {b}", c - a * b


def _calculate_task(rng: random.Random) -> ToolTask:
    if rng.random() < 0.3:
        percent, base = rng.choice([10, 15, 20, 25, 50]), 20 * rng.randint(2, 30)
        expression, result = f"{base} * {percent} / 100", base * percent // 100
        prompt, answer = f"What is {percent}% of {base}?", f"{percent}% of {base} is {result}."
    else:
        expression, result = _calculation(rng)
        prompt = rng.choice(["Can you calculate {} for me?", "What is {}?", "Please work out {}."])
        prompt, answer = prompt.format(expression), f"{expression} equals {result}."
    return prompt, "calculate", {"expression": expression}, {"result": result}, answer


def _convert_task(rng: random.Random) -> ToolTask:
    src, dst, factor, exact = rng.choice(tool_content.TOOL_CONVERSIONS)
    if factor is None:  # fahrenheit → celsius, with values that convert to whole degrees
        value = rng.choice([50, 68, 77, 86, 95, 104])
        result = _num(round((value - 32) * 5 / 9, 2))
        prompt, answer = f"What is {value} degrees Fahrenheit in Celsius?", f"{value} °F is {result} °C."
    else:
        value = rng.choice([2, 5, 10, 12, 20, 26, 42, 50, 100])
        result = _num(round(value * factor, 2))
        prompt = rng.choice(["Convert {v} {s} to {d}.", "How many {d} is {v} {s}?"]).format(v=value, s=src, d=dst)
        answer = f"{value} {src} is {'' if exact else 'about '}{result} {dst}."
    arguments = {"value": value, "from_unit": src, "to_unit": dst}
    return prompt, "convert_units", arguments, {"result": result, "unit": dst}, answer


def _time_task(rng: random.Random) -> ToolTask:
    city_a, city_b = rng.sample(list(tool_content.UTC_OFFSETS), 2)
    offset_a, offset_b = tool_content.UTC_OFFSETS[city_a], tool_content.UTC_OFFSETS[city_b]
    diff = _num(offset_a - offset_b)
    hours = f"{abs(diff)} hour{'' if abs(diff) == 1 else 's'}"
    relation = "the same time as" if diff == 0 else f"{hours} {'ahead of' if diff > 0 else 'behind'}"
    prompt = rng.choice(["What's the time difference between {a} and {b}?", "How far ahead or behind {b} is {a}?"])
    observation = {"city_a": city_a, "city_b": city_b, "utc_offset_a": offset_a, "utc_offset_b": offset_b,
                   "difference_hours": diff}  # fmt: skip
    answer = f"In standard time, {city_a} is {relation} {city_b}."
    arguments = {"city_a": city_a, "city_b": city_b}
    return prompt.format(a=city_a, b=city_b), "get_time_difference", arguments, observation, answer


def _book_task(query: str, by_author: bool) -> ToolTask:
    found = [b for b in tool_content.BOOKS if (b[1] if by_author else b[0]) == query]
    observation = {"results": [{"title": t, "author": a, "year": y} for t, a, y in found]}
    if by_author:
        listed = " and ".join(f"{t} ({y})" for t, _, y in found)
        prompt, answer = f"Can you find books by {query}?", f"I found {len(found)} books by {query}: {listed}."
    else:
        _, author, year = found[0]
        prompt = f"Can you look up the book {query} in the catalogue?"
        answer = f"{query} was written by {author} and first published in {year}."
    return prompt, "search_books", {"query": query}, observation, answer


def _tool_turns(task: ToolTask) -> list[Row]:
    prompt, name, arguments, observation, answer = task
    call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
    return [
        {"from": "human", "value": prompt},
        {"from": "function_call", "value": call},
        {"from": "observation", "value": json.dumps(observation, ensure_ascii=False)},
        {"from": "gpt", "value": answer},
    ]


def _tools_json(rng: random.Random, needed: list[str], extra: int) -> str:
    """The row's `tools` column: the needed tools plus `extra` others, in random order, as a JSON string."""
    names = needed + rng.sample([n for n in tool_content.TOOLS if n not in needed], extra)
    rng.shuffle(names)
    return json.dumps([tool_content.TOOLS[n] for n in names], ensure_ascii=False)


def _toolcall_row(rng: random.Random, tasks: list[ToolTask], follow_ups: Iterable[str] = ()) -> Row:
    """One conversation of one or more tool tasks; later tasks' prompts are replaced by `follow_ups`."""
    turns: list[Row] = []
    for task, prompt in zip(tasks, [tasks[0][0], *follow_ups], strict=True):
        turns += _tool_turns((prompt, *task[1:]))
    needed = list(dict.fromkeys(task[1] for task in tasks))
    return {"conversations": turns, "tools": _tools_json(rng, needed, rng.randint(0, 2))}


def _book_tasks(rng: random.Random) -> list[ToolTask]:
    counts = Counter(author for _, author, _ in tool_content.BOOKS)
    authors = [author for author, count in counts.items() if count > 1]
    titles = [title for title, author, _ in tool_content.BOOKS if counts[author] == 1]
    tasks = [_book_task(author, by_author=True) for author in rng.sample(authors, 3)]
    return tasks + [_book_task(title, by_author=False) for title in rng.sample(titles, 2)]


def _tool_tasks(rng: random.Random) -> tuple[list[ToolTask], list[list[ToolTask]]]:
    """Tasks with distinct prompts: the single-call ones, and the groups that make multi-turn conversations."""
    seen: set[str] = set()

    def distinct(make: Callable[[], ToolTask], n: int) -> list[ToolTask]:
        tasks: list[ToolTask] = []
        while len(tasks) < n:
            task = make()
            if task[0] not in seen:
                seen.add(task[0])
                tasks.append(task)
        return tasks

    weather = [_weather_task(rng, city) for city in rng.sample(tool_content.WEATHER_CITIES, 7)]
    calculations, conversions = distinct(lambda: _calculate_task(rng), 9), distinct(lambda: _convert_task(rng), 8)
    times = distinct(lambda: _time_task(rng), 6)
    singles = weather[:5] + calculations[:7] + conversions[:6] + times[:5] + _book_tasks(rng)
    return singles, [weather[5:], calculations[7:], conversions[6:], times[5:]]


_FOLLOW_UPS = {
    "get_current_weather": "And what about {city}?",
    "calculate": "Great. Can you also work out {expression}?",
    "convert_units": "Thanks. Now convert {value} {from_unit} to {to_unit}.",
}


def _follow_up(name: str, arguments: Row) -> str:
    unit = " In Fahrenheit, please." if arguments.get("unit") == "fahrenheit" else ""
    return _FOLLOW_UPS[name].format(**arguments) + unit


def _multi_turn_toolcall_rows(rng: random.Random, groups: list[list[ToolTask]]) -> list[Row]:
    """One conversation per group: later tasks are asked as follow-ups; a lone task gets a closing exchange."""
    rows = []
    for tasks in groups:
        follow_ups = [_follow_up(name, arguments) for _, name, arguments, _, _ in tasks[1:]]
        row = _toolcall_row(rng, tasks, follow_ups)
        if len(tasks) == 1:
            row["conversations"] += sharegpt_turns(
                ["Thanks, that's helpful!", "You're welcome! Let me know if you need anything else."]
            )
        rows.append(row)
    return rows


def build_glaive_toolcall_en_demo() -> list[Row]:
    rng = seeded_rng("glaive_toolcall_en_demo")
    singles, groups = _tool_tasks(rng)
    rows = [_toolcall_row(rng, [task]) for task in singles] + _multi_turn_toolcall_rows(rng, groups)
    for i, (prompt, answer) in enumerate(tool_content.NO_TOOL_CHATS):
        tools = "[]" if i % 2 else _tools_json(rng, [], rng.randint(1, 3))
        rows.append({"conversations": sharegpt_turns([prompt, answer]), "tools": tools})
    rng.shuffle(rows)
    return rows
