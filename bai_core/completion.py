"""How a completion reads, as its chat template wrote it: one rule for the verifiable rewards, the training metrics
and scoring.

R1-Distill's chat template ends the prompt with `<｜Assistant｜><think>\\n`: its completions start inside a think
block, hold `</think>` but never `<think>`. Read without knowing that, a completion cut off mid-thought looks like a
plain answer, and a verifier scoring its last number pays for unfinished thinking, which RL then learns to exploit.
So a completion is read with what its prompt left open:

- its answer is what follows the last `</think>`; a think block that never closed (opened by the prompt or by the
  completion itself) holds no answer;
- it finished when it ended with one of the model's stop ids (generation_config.json's eos ids, the tokenizer's eos
  and pad: what `generate` and TRL stop on); one that ran into the token limit without its stop id was truncated.

Status: "finished" (stopped, any think block closed), "open_think" (stopped inside its think block) or "truncated".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bai_core.io.chat_template import THINK_CLOSE, opens_think
from bai_core.io.tokenizer_files import TokenizerFacts

FINISHED, OPEN_THINK, TRUNCATED = "finished", "open_think", "truncated"


@dataclass(frozen=True)
class CompletionReader:
    template_opens_think: bool  # the chat template's generation prompt leaves a think block open
    stop_ids: frozenset[int]

    @classmethod
    def of_checkpoint(cls, folder: Path, extra_stop_ids: Sequence[int | None] = ()) -> CompletionReader:
        """The reader for a checkpoint's completions: its chat template and stop ids (`extra_stop_ids`: e.g. a pad
        token set at run time)."""
        facts = TokenizerFacts.read(Path(folder))
        stops = [*facts.eos_ids, facts.token_id(facts.special["pad_token"]), *extra_stop_ids]
        return cls(template_opens_think=bool(facts.chat_template and facts.chat_template.opens_think),
                   stop_ids=frozenset(i for i in stops if i is not None))

    def prompt_opens_think(self, prompt) -> bool:
        """A text prompt (rendered, as lm-eval gives it) says itself; chat messages get the template's tail."""
        return opens_think(prompt) if isinstance(prompt, str) else self.template_opens_think

    def answer(self, prompt, completion: str) -> str | None:
        """The part of the completion that holds its answer, or None when its think block never closed."""
        return answer_part(completion, self.prompt_opens_think(prompt))

    def stopped(self, completion_ids: Sequence[int]) -> bool:
        """Did the model end the completion itself (its last id a stop id), rather than the token limit?"""
        return bool(completion_ids) and completion_ids[-1] in self.stop_ids

    def status(self, prompt, completion: str, completion_ids: Sequence[int]) -> str:
        if not self.stopped(completion_ids):
            return TRUNCATED
        return OPEN_THINK if self.answer(prompt, completion) is None else FINISHED


def answer_part(completion: str, prompt_opened_think: bool = False) -> str | None:
    """What follows the completion's last `</think>`; None when a think block (the prompt's or its own) never
    closed; the whole completion when there was none."""
    if THINK_CLOSE in completion:
        return completion.rsplit(THINK_CLOSE, 1)[1]
    if prompt_opened_think or opens_think(completion):
        return None
    return completion
