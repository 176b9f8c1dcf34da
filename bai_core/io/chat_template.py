"""A checkpoint's chat template, rendered the way transformers renders it (a sandboxed jinja2 environment with
trim_blocks and lstrip_blocks, loop controls, `tojson`, `raise_exception`, and `{% generation %}` blocks), so bai
can read two facts off it without loading a tokenizer:

- what the generation prompt leaves open: R1-Distill's template ends the prompt with `<｜Assistant｜><think>\\n`, so
  the model's completion starts inside a think block and never writes `<think>` itself;
- which text ends an assistant turn: `<|im_end|>` for Qwen's templates, `<｜end▁of▁sentence｜>` for R1's,
  `<|eot_id|>` for Llama 3's; a merge of models that end their turns differently should stop on each.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_USER, _ANSWER = "bai-probe-question", "bai-probe-answer"


def opens_think(text: str) -> bool:
    """Does `text` leave a think block open (a `<think>` after the last `</think>`)?"""
    return text.rfind(THINK_OPEN) > text.rfind(THINK_CLOSE)


@dataclass(frozen=True)
class ChatTemplate:
    source: str
    special: dict  # bos_token, eos_token, ...: the names templates read

    @classmethod
    def read(cls, folder: Path, tokenizer_config: dict, special: dict) -> ChatTemplate | None:
        """The template transformers would use: chat_template.jinja, chat_template.json, else tokenizer_config's
        (the "default" one where several are named)."""
        if (folder / "chat_template.jinja").is_file():
            return cls((folder / "chat_template.jinja").read_text(encoding="utf-8"), special)
        source = tokenizer_config.get("chat_template")
        if (folder / "chat_template.json").is_file():
            source = json.loads((folder / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        if isinstance(source, list):  # [{"name": "default", "template": ...}, ...]
            named = {entry.get("name"): entry.get("template") for entry in source if isinstance(entry, dict)}
            source = named.get("default")
        return cls(source, special) if isinstance(source, str) and source else None

    def render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        return _environment().from_string(self.source).render(
            messages=messages, add_generation_prompt=add_generation_prompt, **self.special)

    @cached_property
    def generation_tail(self) -> str | None:
        """What the generation prompt adds after the conversation (None where the template cannot be rendered)."""
        conversation = [{"role": "user", "content": _USER}]
        _environment()  # a missing jinja2 is an error, not a template that says nothing
        try:
            with_prompt = self.render(conversation, add_generation_prompt=True)
            without = self.render(conversation, add_generation_prompt=False)
        except Exception:  # noqa: BLE001 - a template that needs what this probe does not give says nothing here
            return None
        return with_prompt[len(without):] if with_prompt.startswith(without) else None

    @property
    def opens_think(self) -> bool:
        return self.generation_tail is not None and opens_think(self.generation_tail)

    @cached_property
    def turn_end(self) -> str | None:
        """The text the template writes right after an assistant message's content, up to the line's end (e.g.
        `<|im_end|>`), or None where it writes nothing there or cannot be rendered."""
        _environment()  # as above
        try:
            text = self.render([{"role": "user", "content": _USER}, {"role": "assistant", "content": _ANSWER}],
                               add_generation_prompt=False)
        except Exception:  # noqa: BLE001 - as above
            return None
        if _ANSWER not in text:
            return None
        after = text.rsplit(_ANSWER, 1)[1].split("\n", 1)[0].strip()
        return after or None


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):
        """`{% generation %}...{% endgeneration %}` (transformers' assistant-mask marker) renders its body."""

        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        from datetime import datetime

        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                extensions=[Generation, loopcontrols])
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    return environment
