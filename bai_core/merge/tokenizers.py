"""The merge's tokenizer check: do the inputs' ids mean the same things, and which ids should the merge stop on?

A merge averages embedding rows id by id. Where two inputs give an id different texts (151645 is `<|im_end|>` in
Qwen2.5-Math, `<｜Assistant｜>` in R1-Distill), the merged row is a blend of two meanings, and only the donor's
tokenizer (config, chat template) travels with the output. bai says so in one warning naming each such id with its
texts (`merge.tokenizers: strict` refuses instead), refuses base vocabularies of different sizes, and records in the
manifest what it compared and what it chose.

Stop ids: the merged model is part instruct model, part reasoning model, part base, and each ended its turns its
own way (the instruct model with `<|im_end|>`, R1 with `<｜end▁of▁sentence｜>`). The output's generation_config.json
stops on the donor's eos ids and on every input's eos ids and chat-template turn end, wherever that id is an added
(special) token in the donor's tokenizer: a merge stops where any of its parts would have. An id that is ordinary
text in the donor's tokenizer is left out and said in the manifest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bai_core.errors import BaiError
from bai_core.io.tokenizer_files import GENERATION_CONFIG, TokenizerFacts
from bai_core.merge.config import TokenizerPolicy

SHOWN = 8  # differing ids named in the warning line; the manifest has them all


@dataclass
class TokenizerReport:
    donor: str
    facts: dict[str, TokenizerFacts]
    differing: dict[int, dict[str, str | None]] = field(default_factory=dict)  # id -> role -> text
    base_vocabulary: str = "same"  # same | differs | unknown
    stop_ids: list[int] = field(default_factory=list)
    left_out: dict[int, str] = field(default_factory=dict)  # id -> its plain text in the donor's tokenizer

    def differences(self) -> str | None:
        """Each id whose texts differ (the first SHOWN of them) in one phrase, or None."""
        parts = []
        if self.differing:
            shown = [f"{token_id} " + " vs ".join(f"{text!r} ({', '.join(roles)})"
                                                 for text, roles in _by_text(texts).items())
                     for token_id, texts in list(self.differing.items())[:SHOWN]]
            more = f" and {len(self.differing) - SHOWN} more" if len(self.differing) > SHOWN else ""
            parts.append(f"{len(self.differing)} token id(s) mean different things: {'; '.join(shown)}{more}")
        if self.base_vocabulary == "differs":
            parts.append("the base vocabularies map ids to different texts")
        return f"tokenizers differ: {'; '.join(parts)}" if parts else None

    def warning(self) -> str | None:
        """The differences as the one warning line a merge prints, or None."""
        if (differences := self.differences()) is None:
            return None
        return (f"{differences}. The merge averages those embedding rows; the output keeps {self.donor}'s "
                "tokenizer (merge.tokenizers: strict, or --strict, refuses instead)")

    def manifest(self) -> dict:
        return {
            "donor": self.donor,
            "differing_ids": {str(i): texts for i, texts in self.differing.items()},
            "base_vocabulary": self.base_vocabulary,
            "inputs": {role: {"eos_ids": list(f.eos_ids), "context_length": f.context_length,
                              "chat_template_turn_end": f.chat_template.turn_end if f.chat_template else None,
                              "generation_prompt_opens_think": bool(f.chat_template and f.chat_template.opens_think)}
                       for role, f in self.facts.items()},
            "stop_ids": [{"id": i, "text": self.facts[self.donor].text(i)} for i in self.stop_ids],
            "stop_ids_left_out": {str(i): text for i, text in self.left_out.items()},
        }


def compare_tokenizers(facts: dict[str, TokenizerFacts], donor: str,
                       policy: TokenizerPolicy = "warn") -> TokenizerReport:
    """Compare the inputs' tokenizers, read once each (`TokenizerFacts.read`; `donor` is the role whose files the
    output keeps). Raises BaiError for base vocabularies of different sizes, and, under `strict`, for any id whose
    texts differ."""
    report = TokenizerReport(donor=donor, facts=facts)
    with_tokenizer = {role: f for role, f in facts.items() if f.added or f.base_vocab_size is not None}

    sized = {role: f for role, f in with_tokenizer.items() if f.base_vocab_size is not None}
    if len({f.base_vocab_size for f in sized.values()}) > 1:
        raise BaiError("tokenizer vocabularies differ in size: " + ", ".join(
            f"{f.base_vocab_size} in {f.folder / 'tokenizer.json'}" for f in sized.values()))
    digests = {f.base_vocab_digest for f in sized.values()}
    report.base_vocabulary = "unknown" if len(sized) < 2 else ("same" if len(digests) == 1 else "differs")

    ids = sorted(set().union(*(f.added for f in with_tokenizer.values()))) if with_tokenizer else []
    for token_id in ids:
        texts = {role: f.text(token_id) for role, f in with_tokenizer.items()}
        if len(set(texts.values())) > 1:
            report.differing[token_id] = texts

    if policy == "strict" and (report.differing or report.base_vocabulary == "differs"):
        raise BaiError(f"{report.differences()}; refused (merge.tokenizers: strict)")
    _choose_stop_ids(report)
    return report


def _choose_stop_ids(report: TokenizerReport) -> None:
    donor = report.facts[report.donor]
    candidates = []
    for f in report.facts.values():
        candidates += list(f.eos_ids)
        if f.chat_template and (turn_end := f.token_id(f.chat_template.turn_end)) is not None:
            candidates.append(turn_end)
    limit = donor.vocab_size
    rest = []
    for token_id in dict.fromkeys(candidates):
        if token_id in donor.eos_ids or (limit is not None and token_id >= limit):
            continue
        if token_id in donor.added:
            rest.append(token_id)
        else:
            report.left_out[token_id] = donor.text(token_id)
    # The donor's own ids first, in its order (the first is what `generate` pads with when no pad is set); the
    # others in id order, so the fused merge and the stage-by-stage one write the same list.
    report.stop_ids = [*donor.eos_ids, *sorted(rest)]


def write_generation_config(report: TokenizerReport, donor_folder: Path, output: Path) -> None:
    """The output's generation_config.json: the donor's, with the chosen stop ids as its eos_token_id."""
    donor = donor_folder / GENERATION_CONFIG
    config = json.loads(donor.read_text()) if donor.is_file() else {
        key: report.facts[report.donor].config[key] for key in ("bos_token_id", "pad_token_id")
        if report.facts[report.donor].config.get(key) is not None}
    if report.stop_ids:
        config["eos_token_id"] = report.stop_ids[0] if len(report.stop_ids) == 1 else report.stop_ids
    (output / GENERATION_CONFIG).write_text(json.dumps(config, indent=2) + "\n")


def _by_text(texts: dict[str, str | None]) -> dict[str | None, list[str]]:
    grouped: dict[str | None, list[str]] = {}
    for role, text in texts.items():
        grouped.setdefault(text, []).append(role)
    return grouped
