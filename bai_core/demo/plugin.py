"""The demo family as a plug-in: everything the stages know of the toy, registered through `bai_core/plugins.py`
as any other plug-in registers. No stage outside `demo/` names it.

    demo://<size>/<member>[@seed]   a member of the trained family (pretrained, instruct, reasoning, reward): without
                                    a seed, the one shipped with bai; another seed is trained once, as a stage of its
                                    own (demo-family-<size>) before the fetches
    demo://synthetic/<role>         random weights (tests, benchmarks)
    demo://<size>/rl[@seed]         RL prompts: the RL split of the arithmetic task (never a train or eval problem)
    verifiable: arithmetic          1 for the task's right final number
    suite: demo                     lm-eval task bai_demo on the family's held-out eval split
    suite: demo-dev                 bai_demo_dev: a dev split from the RL split, for choosing settings (bai tune)

Registration is cheap: what trains or loads the toy is imported when a source is fetched or built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bai_core import plugins
from bai_core.errors import BaiError
from bai_core.evaluation.catalog import SuiteTask

SCHEME = "demo"
RL_PROMPTS = 512  # drawn (with new wording) from the RL split's distinct problems
# Where the family came from, in words that stay true when a rerun shows the stage Cached.
ORIGINS = {"shipped": "shipped with bai, verified", "store": "from the store", "machine": "trained on this machine",
           "trained": "trained on this machine"}


def parse_demo(source: str) -> tuple[str, str, int]:
    """demo://<family>/<role>[@seed] -> (family, role, seed)."""
    from bai_core.config import ROLES
    from bai_core.demo.members import MEMBERS
    from bai_core.demo.sizes import SIZES, seed_or_shipped

    rest, _, seed = source.removeprefix("demo://").partition("@")
    family, _, role = rest.partition("/")
    roles = ROLES if family == "synthetic" else MEMBERS
    if (family != "synthetic" and family not in SIZES) or role not in roles or (seed and not seed.isdigit()):
        raise BaiError(f"{source}: unknown demo checkpoint (known: demo://{{synthetic,{','.join(SIZES)}}}/<role>"
                       f"[@seed], roles {', '.join(MEMBERS)})")
    return family, role, seed_or_shipped(family, seed)


def fetch_member(source: str, store) -> Path:
    """A member's local folder: from the store (built there once, then found there by every machine), else
    bai's cache; random weights for demo://synthetic."""
    family, role, seed = parse_demo(source)
    if family != "synthetic":
        from bai_core.demo.publish import ensure_demo_family, member_key

        if store is not None and (marker := store.find(member_key(family, seed, role))) is not None:
            return store.materialize(member_key(family, seed, role), marker)
        return ensure_demo_family(family, seed, store).root / role
    from bai_core.demo.synthetic import DEMO_SPEC, write_synthetic_family
    from bai_core.fingerprint import cache_dir
    from bai_core.io.atomic import AtomicFolder

    digest = hashlib.sha256(json.dumps({**DEMO_SPEC.__dict__, "seed": seed}, sort_keys=True).encode()).hexdigest()[:12]
    # Keyed by the spec, so a changed spec builds a new family instead of reusing a stale one.
    root = cache_dir() / "demo" / f"synthetic-{digest}"
    if not root.is_dir():
        with AtomicFolder(root) as staging:
            write_synthetic_family(staging.path, DEMO_SPEC, seed=seed)
    return root / role


def family_build(source: str) -> plugins.SourceBuild | None:
    """A trained family is built (or found) as a stage of its own, once per size and seed."""
    family, _, seed = parse_demo(source)
    if family == "synthetic":
        return None
    return plugins.SourceBuild(stage=f"demo-family-{family}", scheme=SCHEME,
                               arguments={"size": family, "seed": seed})


def run_family_build(arguments: dict, store, on_progress) -> tuple[plugins.BuiltSource, str]:
    """The family in the store (shipped, found there, or trained once) and its report as a table."""
    from bai_core.artifact_stage import run_stage
    from bai_core.demo.members import LANGUAGE_MODELS
    from bai_core.demo.publish import FamilyStage, family_key

    size, seed = arguments["size"], arguments["seed"]
    family, how = run_stage(FamilyStage(size, seed, store, on_progress))
    report = family.report
    machine = (report.built_on or {}).get("cpu", "an unrecorded machine")
    uri = store.uri(family_key(size, seed))
    rows = [_row(m, report.models[m], report.models[m]["fingerprint"][:23]) for m in LANGUAGE_MODELS]
    rows += [_row(f"M_sft (w {r['instruct_weight']:g})" if r["alpha"] is None else f"M_bai (alpha {r['alpha']:g})",
                  r, "merged here, not kept") for r in report.merges]
    rows.append({"model": "reward", "accuracy": f"{report.models['reward']['pairwise_accuracy']:.1%} pairwise",
                 "think blocks": "n/a", "mean answer tokens": "n/a", "finished": "n/a", "plain-text accuracy": "n/a",
                 "fingerprint": report.models["reward"]["fingerprint"][:23]})
    built = plugins.BuiltSource(
        result={"uri": uri, "size": size, "seed": seed, "recipe": report.recipe, "origin": family.origin},
        shown=f"{uri} ({ORIGINS[family.origin]})",
        note=f"demo family {size} seed {seed}, recipe {report.recipe}, trained on {machine}: "
             f"{ORIGINS[family.origin]} -> {uri}",
        table=rows, table_key=f"demo-family-{size}-seed{seed}",
        table_description=f"demo family ({size}, seed {seed}, recipe {report.recipe}, trained on {machine}) and its "
                          "merges (w = 0.5, the paper's alpha grid) on the eval split: accuracy (reward model: "
                          "pairwise accuracy on preference pairs), mean answer length in tokens, share of finished "
                          "answers")
    return built, how


def _row(name: str, metrics: dict, fingerprint: str) -> dict:
    plain = metrics.get("plain_text_accuracy")
    return {"model": name, "accuracy": f"{metrics['accuracy']:.1%}", "think blocks": f"{metrics['think_rate']:.0%}",
            "mean answer tokens": f"{metrics['mean_answer_tokens']:.1f}", "finished": f"{metrics['finished_rate']:.0%}",
            "plain-text accuracy": "n/a" if plain is None else f"{plain:.1%}", "fingerprint": fingerprint}


def _build_percent(phase: str, step: int, total: int) -> float:
    from bai_core.demo.family import PHASES

    return 100.0 * (PHASES.index(phase) + step / max(total, 1)) / len(PHASES)


def rl_prompts(source: str) -> list[dict]:
    """demo://<size>/rl[@seed]: chat prompts with their answers."""
    from bai_core.demo.arithmetic import problems
    from bai_core.demo.sizes import SIZES, seed_or_shipped

    rest, _, seed = source.removeprefix("demo://").partition("@")
    size, _, split = rest.partition("/")
    if size not in SIZES or split != "rl" or (seed and not seed.isdigit()):
        raise BaiError(f"prompts {source}: unknown demo prompts (known: demo://{{{','.join(SIZES)}}}/rl[@seed])")
    spec = SIZES[size]
    return [{"prompt": [{"role": "user", "content": p.question}], "answer": p.answer}
            for p in problems("rl", seed_or_shipped(size, seed), spec.a_range, spec.b_range, RL_PROMPTS)]


def arithmetic_correct(completion: str, answer, prompt_opened_think: bool = False) -> bool:
    """The task's rule (the bai_demo task's filter too): the number after </think> in a reasoning answer (one whose
    think block the completion or its prompt opened), else the last number."""
    from bai_core.demo.arithmetic import extract_answer

    style = "reasoning" if prompt_opened_think or "<think>" in completion else "instruct"
    return extract_answer(completion, style) == int(answer)


def _unreadable_number(answer) -> str | None:
    if str(answer).strip().lstrip("-").isdigit():
        return None
    return f"answer {str(answer)[:40]!r} is not a whole number (the arithmetic reward compares final numbers)"


def eval_split(settings, sources: list[str]) -> dict:
    """lm-eval metadata naming the family's eval split ({"size", "seed"}): evaluate.demo_family, else the one
    trained family the demo:// sources name, else a built family folder's family.json beside a local member."""
    if settings.demo_family:
        size, _, seed = settings.demo_family.partition("@")
        return _known_size({"size": size, "seed": int(seed)})
    families = {parse_demo(s)[::2] for s in sources if s.startswith("demo://") and not s.startswith("demo://synth")}
    for source in sources:
        marker = Path(source).expanduser() / ".." / "family.json"
        if "://" not in source and marker.is_file():
            family = json.loads(marker.read_text())
            families.add((family["size"], family["seed"]))
    if len(families) == 1:
        size, seed = families.pop()
        return _known_size({"size": size, "seed": seed})
    which = "several demo families (" + ", ".join(f"{s}@{n}" for s, n in sorted(families)) + ")" if families \
        else "no demo family"
    raise BaiError(f"evaluate.suite: the demo suite scores a demo family's eval split, and the models name {which}; "
                   "set evaluate.demo_family (bai eval --demo-family), e.g. demo@1")


def _known_size(metadata: dict) -> dict:
    from bai_core.demo.sizes import SIZES

    if metadata["size"] not in SIZES:
        raise BaiError(f"evaluate.demo_family: unknown size {metadata['size']!r} (known: {', '.join(SIZES)})")
    return metadata


plugins.add_scheme(plugins.CheckpointScheme(
    name=SCHEME, form="demo://<size>/<member>[@seed]", fetch=fetch_member, builds=family_build,
    run_build=run_family_build, build_percent=_build_percent,
    build_title=lambda a: f"training the {a['size']} demo family (seed {a['seed']})"))
plugins.add_prompt_scheme(plugins.PromptScheme(name=SCHEME, form="demo://<size>/rl", rows=rl_prompts))
plugins.add_verifier(plugins.Verifier(name="arithmetic", correct=arithmetic_correct, unreadable=_unreadable_number))
for name, task, split, dev in (("demo", "bai_demo", "eval split", "demo-dev"), ("demo-dev", "bai_demo_dev", "dev split "
                                                                                "(from its RL split)", None)):
    plugins.add_suite(plugins.Suite(
        name=name, tasks=(SuiteTask(task, "exact_match,final-number", "arithmetic", f"the demo family's {split}"),),
        include_path=Path(__file__).parent / "suites", metadata=eval_split, dev=dev,
        shown=lambda metadata: f"demo family {metadata['size']}@{metadata['seed']}" if metadata else ""))
