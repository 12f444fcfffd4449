"""What one board shares between its tabs: the elements by id (for the form state and for relabelling in
another language), the runner and the chat engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lf_ray.webui.locales import DEFAULT_LANGUAGE, element_text
from lf_ray.webui.roots import AllowedRoots
from lf_ray.webui.runner import Runner
from lf_ray.webui.web_chat import BoardChat

# Element kinds that hold no form value: their text is relabelled, but they are not part of the state.
_NOT_STATE = ("Button", "Tab", "Accordion", "HTML", "Plot", "JSON", "Dataframe", "Chatbot", "Markdown")
_OUTPUTS = ("output_box", "info_box", "query")


def dom_id(elem_id: str) -> str:
    """`train.start_btn` → `train-start_btn` (a valid CSS id, for styling and browser tests)."""
    return elem_id.replace(".", "-")


@dataclass
class Board:
    demo_mode: bool = False
    save_dir: Path = Path("saves")
    config_dir: Path = Path("board_configs")
    lang: str = DEFAULT_LANGUAGE
    allowed_paths: tuple[str, ...] = ()
    """Folders and storage URIs the forms may name besides the start folder and the save and config folders."""
    elements: dict[str, Any] = field(default_factory=dict)
    roots: AllowedRoots = field(init=False)
    runner: Runner = field(init=False)
    chat: BoardChat = field(default_factory=BoardChat)

    def __post_init__(self) -> None:
        self.roots = AllowedRoots.of([self.save_dir, self.config_dir, *self.allowed_paths])
        self.runner = Runner(demo_mode=self.demo_mode, jobs_dir=Path(self.save_dir) / ".board_jobs", roots=self.roots)

    def text(self, elem_id: str) -> dict[str, str]:
        """Constructor keywords of an element in the board's starting language (label, info, elem_id)."""
        words = element_text(elem_id, self.lang)
        return {**words, "elem_id": dom_id(elem_id)}

    def add(self, elements: Mapping[str, Any]) -> None:
        self.elements.update(elements)

    def __getitem__(self, elem_id: str) -> Any:
        return self.elements[elem_id]

    def form(self) -> set[Any]:
        """Every element that holds a form value, as a Gradio input set (the handler gets a dict)."""
        return {
            elem
            for elem_id, elem in self.elements.items()
            if type(elem).__name__ not in _NOT_STATE and not elem_id.endswith(_OUTPUTS)
        }

    def state(self, values: Mapping[Any, Any]) -> dict[str, Any]:
        """A handler's `{component: value}` → `{elem_id: value}`."""
        ids = {id(elem): elem_id for elem_id, elem in self.elements.items()}
        return {ids[id(elem)]: value for elem, value in values.items() if id(elem) in ids}

    def form_updates(self, values: Mapping[str, Any]) -> dict[Any, Any]:
        """Put loaded `{elem_id: value}` back into the form (unknown ids from older configs are skipped)."""
        return {self.elements[key]: value for key, value in values.items() if key in self.elements}
