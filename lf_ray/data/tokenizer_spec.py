"""The tokenizer a config names, fixed by its template: one recipe shared by preprocessing, training and export,
so every step sees the same eos / pad / stop words and therefore the same token ids. Plain data: it pickles to
Ray workers and actors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lf_ray.model.new_tokens import NewTokens, add_new_tokens, new_tokens

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from lf_ray.config import LfRayConfig
    from lf_ray.data.templates import Template


@dataclass(frozen=True)
class TokenizerSpec:
    """Everything an actor needs to rebuild the same tokenizer + template (plain data: it is pickled)."""

    model_path: str
    template: str | None
    tool_format: str | None
    default_system: str | None
    enable_thinking: bool | None
    preserve_thinking: bool
    train_on_prompt: bool
    resize_vocab: bool
    trust_remote_code: bool
    new_tokens: NewTokens = field(default_factory=NewTokens)
    revision: str = "main"
    cache_dir: str | None = None
    split_special_tokens: bool = False

    def load(self) -> tuple[PreTrainedTokenizerBase, Template]:
        from lf_ray.model.loader import load_tokenizer

        tokenizer = load_tokenizer(
            self.model_path,
            revision=self.revision,
            cache_dir=self.cache_dir,
            trust_remote_code=self.trust_remote_code,
            split_special_tokens=self.split_special_tokens,
        )
        add_new_tokens(tokenizer, self.new_tokens)
        return tokenizer, self.fix(tokenizer)

    def fix(self, tokenizer: PreTrainedTokenizerBase) -> Template:
        """The template, with `tokenizer` given its eos / pad / stop words (training must see the same ids)."""
        from lf_ray.data.templates import resolve_template

        return resolve_template(
            tokenizer,
            self.template,
            tool_format=self.tool_format,
            default_system=self.default_system,
            enable_thinking=self.enable_thinking,
            preserve_thinking=self.preserve_thinking,
            train_on_prompt=self.train_on_prompt,
            resize_vocab=self.resize_vocab,
        )


def tokenizer_spec(cfg: LfRayConfig) -> TokenizerSpec:
    from lf_ray.model.loader import default_template_for

    data, model = cfg.data, cfg.model
    return TokenizerSpec(
        model_path=model.model_name_or_path,
        template=data.template or default_template_for(model.model_name_or_path),
        tool_format=data.tool_format,
        default_system=data.default_system,
        enable_thinking=data.enable_thinking,
        preserve_thinking=data.preserve_thinking,
        train_on_prompt=data.train_on_prompt,
        resize_vocab=model.resize_vocab,
        trust_remote_code=model.trust_remote_code,
        new_tokens=new_tokens(cfg),
        revision=model.model_revision,
        cache_dir=model.cache_dir,
        split_special_tokens=model.split_special_tokens,
    )
