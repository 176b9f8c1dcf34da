"""Real checkpoints' side files through bai: the paper's trio (Qwen2.5-Math-1.5B, its instruct tune, R1-Distill-Qwen-
1.5B), Llama 3 and Mixtral, as tiny stand-ins carrying their real configs, tokenizers, chat templates and generation
configs (tests/real_families.py, tests/data/real-families/README.md). What each test checks failed before bai knew
these files: a think block R1's template opened and never closed, ids whose texts differ between the inputs, a tied
flag that lied, M_sft's files chosen two ways, an actor unlike M_bai, manifests with relative paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from bai.cli import main
from tests.real_families import REAL, write_family

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO / "tests" / "data" / "gsm8k-train-head.jsonl"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
# The words the stand-ins' tokenizers hold whole: the prompts' and the demo suite's (a prompt is then tens of tokens).
CORPUS = GSM8K.read_text() + " " + INSTRUCTION + " How many marbles does Ann have now? more gets has"
QWEN_R1_DIFFERING = {  # id: (Qwen2.5-Math's text, R1-Distill's), as the real tokenizer files give them
    151643: ("<|endoftext|>", "<｜end▁of▁sentence｜>"), 151644: ("<|im_start|>", "<｜User｜>"),
    151645: ("<|im_end|>", "<｜Assistant｜>"), 151646: ("<|object_ref_start|>", "<｜begin▁of▁sentence｜>"),
    151647: ("<|object_ref_end|>", "<|EOT|>"), 151648: ("<|box_start|>", "<think>"),
    151649: ("<|box_end|>", "</think>")}


@pytest.fixture(scope="session")
def families(tmp_path_factory):
    """name -> {role: folder}: every family's stand-ins, built once (~10 s). Read only."""
    root = tmp_path_factory.mktemp("real-families")
    return {name: write_family(name, root / name, CORPUS) for name in ("qwen-math-r1", "llama-3", "mixtral")}


def merge(family: dict, out: Path, *extra: str, capsys) -> tuple[int, str, str]:
    argv = ["merge", *[f"--{role}={folder}" for role, folder in family.items()], "--output", str(out), *extra]
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_papers_trio_merges_with_one_warning_naming_each_differing_id(families, tmp_path, capsys):
    code, out, err = merge(families["qwen-math-r1"], tmp_path / "bai", capsys=capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and "7 token id(s) mean different things" in warnings[0]
    for token_id, (qwen, r1) in QWEN_R1_DIFFERING.items():
        assert f"{token_id} {qwen!r} (pretrained, instruct) vs {r1!r} (reasoning)" in warnings[0]
    manifest = json.loads((tmp_path / "bai" / "bai_merge.json").read_text())
    tokenizers = manifest["tokenizers"]
    assert tokenizers["donor"] == "reasoning"
    assert {int(i): (t["instruct"], t["reasoning"]) for i, t in tokenizers["differing_ids"].items()} == \
        QWEN_R1_DIFFERING
    # stops where any part would: R1's end of sentence, and the id the instruct half ends its turns with
    assert [s["id"] for s in tokenizers["stop_ids"]] == [151643, 151645]
    generation = json.loads((tmp_path / "bai" / "generation_config.json").read_text())
    real = json.loads((REAL / "deepseek-ai--DeepSeek-R1-Distill-Qwen-32B" / "generation_config.json").read_text())
    assert generation == {**real, "eos_token_id": [151643, 151645]}
    assert tokenizers["inputs"]["reasoning"]["generation_prompt_opens_think"] is True
    assert tokenizers["inputs"]["instruct"]["chat_template_turn_end"] == "<|im_end|>"
    # inputs by resolvable URI, never as the command was typed
    for role, folder in families["qwen-math-r1"].items():
        assert manifest["inputs"][role]["uri"] == folder.resolve().as_uri()
    # R1 stores lm_head, so M_bai has its own: untied, whatever the donor's flag
    config = json.loads((tmp_path / "bai" / "config.json").read_text())
    assert config["tie_word_embeddings"] is False and config["max_position_embeddings"] == 131072
    assert "stops on 151643 '<｜end▁of▁sentence｜>', 151645 '<｜Assistant｜>'" in out

    code, out, err = merge(families["qwen-math-r1"], tmp_path / "strict", "--strict", capsys=capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("bai: error: tokenizers differ: 7 token id(s)")
    assert "151648 '<|box_start|>' (pretrained, instruct) vs '<think>' (reasoning)" in lines[0]
    assert "(merge.tokenizers: strict)" in lines[0] and not (tmp_path / "strict").exists()


@pytest.mark.parametrize("name,differing,stops", [
    # R1-Distill-Llama renames Llama 3's bos/eos and reserved ids 128011-128015
    ("llama-3", {128000, 128001, 128011, 128012, 128013, 128014, 128015}, [128001, 128008, 128009]),
    ("mixtral", set(), [2]),  # one tokenizer for all three
])
def test_other_families_are_compared_the_same_way(families, tmp_path, capsys, name, differing, stops):
    code, _, err = merge(families[name], tmp_path / "bai", capsys=capsys)
    assert code == 0, err
    tokenizers = json.loads((tmp_path / "bai" / "bai_merge.json").read_text())["tokenizers"]
    assert {int(i) for i in tokenizers["differing_ids"]} == differing
    assert ("warning:" in err) == bool(differing)
    assert [s["id"] for s in tokenizers["stop_ids"]] == stops


def test_tokenizers_of_different_vocabulary_sizes_are_refused_naming_both(families, tmp_path, capsys):
    inputs = {role: tmp_path / role for role in families["qwen-math-r1"]}
    for role, folder in families["qwen-math-r1"].items():
        shutil.copytree(folder, inputs[role])
    shutil.copyfile(families["llama-3"]["pretrained"] / "tokenizer.json", inputs["instruct"] / "tokenizer.json")
    code, _, err = merge(inputs, tmp_path / "out", capsys=capsys)
    assert code == 1 and err.count("\n") == 1, err
    assert "tokenizer vocabularies differ in size: 151643 in" in err and f"128000 in {inputs['instruct']}" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tokenizer_from", ["reasoning", "instruct", "pretrained"])
def test_m_sft_carries_the_same_files_from_the_cli_and_the_pipeline(families, tmp_path, tokenizer_from):
    """The fused pass (`bai merge --stage1-output`) and the pipeline's stage 1 choose M_sft's files by one rule:
    with tokenizer_from pretrained, the reasoning model's (M_sft holds no pretrained weights)."""
    from bai_core.merge import merge, merge_two_stages
    from bai_core.merge.config import MergeJob, SftMergeJob, tokenizer_donors

    family = families["qwen-math-r1"]
    merge_two_stages(MergeJob(**family, output=tmp_path / "bai", stage1_output=tmp_path / "cli-sft",
                              tokenizer_from=tokenizer_from))
    merge(SftMergeJob(instruct=family["instruct"], reasoning=family["reasoning"], output=tmp_path / "sft",
                      tokenizer_from=tokenizer_donors(tokenizer_from)["sft"]))
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (tmp_path / "cli-sft" / name).read_bytes() == (tmp_path / "sft" / name).read_bytes(), name
    donor = "instruct" if tokenizer_from == "instruct" else "reasoning"
    assert (tmp_path / "sft" / "tokenizer_config.json").read_bytes() == \
        (family[donor] / "tokenizer_config.json").read_bytes()
    max_positions = json.loads((tmp_path / "bai" / "config.json").read_text())["max_position_embeddings"]
    assert max_positions == (4096 if tokenizer_from != "reasoning" else 131072)  # M_bai: its own donor's


def test_the_tied_flag_follows_the_content(family_factory, tmp_path):
    """Every input stores lm_head, but the donor's config says tied: the merged lm_head differs from the merged
    embedding, so the output must say untied (a loader trusting the flag would drop it)."""
    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob
    from tests.test_merge_correctness import load_all

    family = {}
    for role, folder in family_factory(tied=False).items():
        family[role] = tmp_path / role
        shutil.copytree(folder, family[role])
    config = json.loads((family["reasoning"] / "config.json").read_text())
    (family["reasoning"] / "config.json").write_text(json.dumps({**config, "tie_word_embeddings": True}))
    merge_two_stages(MergeJob(**family, output=tmp_path / "bai"))
    merged = load_all(tmp_path / "bai")
    assert not merged["lm_head.weight"].equal(merged["model.embed_tokens.weight"])
    assert json.loads((tmp_path / "bai" / "config.json").read_text())["tie_word_embeddings"] is False


@pytest.mark.parametrize("method,extra", [
    ("fp8", {"fmt": "e4m3", "weight_block_size": [128, 128]}),  # DeepSeek-V3 style, with weight_scale_inv tensors
    ("gptq", {"bits": 4, "group_size": 128}),
    ("awq", {"bits": 4, "version": "gemm"}),
    ("bitsandbytes", {"load_in_4bit": True}),
])
def test_quantized_inputs_are_refused_in_one_line(editable_family, tmp_path, capsys, method, extra):
    path = editable_family["instruct"] / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "quantization_config": {"quant_method": method, **extra}}))
    code, _, err = merge(editable_family, tmp_path / "out", capsys=capsys)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path}: quantized checkpoint ({method})" in err and not (tmp_path / "out").exists()


def test_scoring_counts_an_answer_finished_the_way_the_rewards_read_it(families, tmp_path):
    """lm-eval's HF model as bai measures it, on M_bai of the paper's trio: R1's template opens the think block, so
    an answer that stops inside it did not finish; one that closes it and stops did; one the token limit cut did
    not; and the instruct half's turn end is a stop."""
    from bai_core.evaluation.config import EvaluateSettings
    from bai_core.evaluation.harness import measured_hflm
    from bai_core.merge import merge_two_stages
    from bai_core.merge.config import MergeJob

    merge_two_stages(MergeJob(**families["qwen-math-r1"], output=tmp_path / "bai"))
    model = measured_hflm(tmp_path / "bai", EvaluateSettings(batch_size=1), "cpu")
    tokenizer = model.tokenizer
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "How many clips?"}], tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.endswith("<think>\n")
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    eos = tokenizer.eos_token_id
    answer = ids("48 + 24 = 72</think> 72")
    assert model._measure(prompt, answer + [eos], [], 64) == (len(answer), True)
    assert model._measure(prompt, ids("48 + 24 = 72, so 72") + [eos], [], 64)[1] is False  # stopped mid-thought
    cut = ids("48 + 24 = 72</think> 72 clips and")
    assert model._measure(prompt, cut, [], len(cut)) == (len(cut), False)  # the limit, no stop id
    assert model._measure(prompt, answer + [151645], [], 64) == (len(answer), True)  # <|im_end|>'s id


@pytest.mark.parametrize("save_dtype", ["auto", "float32"])
def test_the_actor_is_published_as_a_sibling_of_its_start(families, tmp_path, save_dtype):
    """What TRL's save writes (float32 weights, `use_cache: false`, a re-saved tokenizer) made M_bai's kind of
    checkpoint again: its dtype (unless save_dtype says otherwise), its config and tokenizer files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bai_core.io.safetensors_file import dominant_float_dtype
    from bai_core.rl.actor import publish_as_sibling

    start = families["qwen-math-r1"]["reasoning"]  # bf16, sharded, R1's real side files
    model = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32)
    model.config.use_cache = False  # as gradient checkpointing leaves it
    model.save_pretrained(tmp_path / "actor")
    AutoTokenizer.from_pretrained(start).save_pretrained(tmp_path / "actor")
    differs = publish_as_sibling(start, tmp_path / "actor", save_dtype)
    actor = tmp_path / "actor"
    wanted = "bfloat16" if save_dtype == "auto" else "float32"
    assert dominant_float_dtype(sorted(actor.glob("*.safetensors"))) == wanted
    reloaded = AutoModelForCausalLM.from_pretrained(actor)
    assert reloaded.dtype == getattr(torch, wanted) and reloaded.config.use_cache is True
    for name in ("tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        assert (actor / name).read_bytes() == (start / name).read_bytes(), name
    if save_dtype == "auto":
        assert (actor / "config.json").read_bytes() == (start / "config.json").read_bytes()
    else:
        assert json.loads((actor / "config.json").read_text()) == {
            **json.loads((start / "config.json").read_text()), "torch_dtype": "float32", "dtype": "float32"}
    assert differs["dtype"] == {"start": "bfloat16", "actor": wanted, "trained_in": "float32"}
    assert differs["trl_saved_config_not_kept"]["use_cache"] == {"start": True, "trl_saved": False}


def local_store(tmp_path: Path):
    from bai_core.storage import StorageConfig

    return StorageConfig(uri=str(tmp_path / "store"))


def refs_of(family: dict, storage) -> dict:
    from bai_core.sources import fetch_checkpoint

    return {role: fetch_checkpoint(role, str(folder), storage) for role, folder in family.items()}


def notes_during(call) -> list[str]:
    """The warnings a library call notes (what `bai run` prints and the Prefect log shows)."""
    from bai_core import progress

    warnings = []

    class Sink:
        def stage(self, *args, **kwargs): ...

        def progress(self, *args, **kwargs): ...

        def note(self, text, warning=False):
            if warning:
                warnings.append(text)

    sink = Sink()
    progress.add_sink(sink)
    try:
        call()
    finally:
        progress.remove_sink(sink)
    return warnings


def paper_config(families: dict, **merge) -> object:
    """configs/qwen-math-1.5b.yaml as shipped, every key validated, pointed at the stand-ins and (the hub being
    out of reach) at GSM8K's first rows in a local file."""
    from bai_core.config import PipelineConfig

    data = yaml.safe_load((REPO / "configs" / "qwen-math-1.5b.yaml").read_text())
    data["models"] = {role: str(folder) for role, folder in families["qwen-math-r1"].items()}
    data["merge"].update(merge)
    data["train"]["prompts"] = {**data["train"]["prompts"], "source": str(GSM8K), "subset": None}
    return PipelineConfig.model_validate(data)


@pytest.mark.parametrize("tokenizer_from,warned", [("reasoning", []), ("pretrained", ["train", "evaluate"])])
def test_the_paper_config_is_checked_offline_and_a_short_context_is_warned_before_training(
        families, tmp_path, tokenizer_from, warned):
    from bai_core.evaluation.stage import prepare_evaluate
    from bai_core.rl.stage import prepare_train

    config = paper_config(families, tokenizer_from=tokenizer_from)
    storage = local_store(tmp_path)
    refs = refs_of(families["qwen-math-r1"], storage)
    carried = {name: config.carried_source(name) for name in config.scored_models}
    warnings = notes_during(lambda: prepare_train(config.train, refs, config.merge, storage))
    # the paper suite's datasets are out of reach here: its settings (max_gen_toks 8192) with the offline demo suite
    offline = config.evaluate.model_copy(update={"suite": "demo", "demo_family": "test@0"})
    warnings += notes_during(lambda: prepare_evaluate(offline, [], {"bai": carried["bai"]}, storage))
    assert [w.split(" ")[0] for w in warnings] == warned
    if warned:  # Qwen2.5-Math-1.5B's config: 4096 positions, for 4096 completion tokens after a prompt
        assert "4096 generated tokens exceed the model's context of 4096 tokens (max_position_embeddings in" in \
            warnings[0] and "the longest prompt (" in warnings[0]
        assert "8192 generated tokens exceed the model's context of 4096 tokens" in warnings[1]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("name", ["qwen-math-r1", "llama-3", "mixtral"])
def test_each_family_through_merge_rl_and_scoring(families, tmp_path, name):
    """`bai run` on the stand-ins: both merges, two GRPO steps with {verifiable: math} on chat prompts, and the demo
    suite scored on M_bai and the actor. The actor comes out a sibling of M_bai; every completion is read as its
    template wrote it, in training and in scoring."""
    from bai.flows.pipeline import bai_pipeline
    from bai_core.config import PipelineConfig

    config = PipelineConfig.model_validate({
        "name": f"conformance-{name}", "storage": {"uri": str(tmp_path / "store")},
        "models": {role: str(folder) for role, folder in families[name].items()},
        "train": {"reward": [{"verifiable": "math"}], "steps": 2, "batch_size": 4, "generations": 2,
                  "max_completion_length": 8, "save_every": 2, "detect_every": 1,
                  "prompts": {"source": str(GSM8K), "prompt_column": "question", "chat": True,
                              "instruction": INSTRUCTION}},
        "evaluate": {"suite": "demo", "demo_family": "test@0", "models": ["bai", "actor"], "limit": 4,
                     "batch_size": 4, "max_gen_toks": 8}})
    summary = json.loads(json.dumps(bai_pipeline(config)))
    states = {row["stage"]: row["state"] for row in summary["stages"]}
    # Every completion is cut at 8 tokens and earns 0, so GRPO's advantages are all 0 and the weights may not move:
    # an actor with M_bai's bytes has M_bai's scores, found already published.
    assert set(states.values()) == {"Completed"} or (
        states.pop("evaluate-actor") == "Cached" and set(states.values()) == {"Completed"})
    bai, actor = (Path(summary["outputs"][key].removeprefix("file://")) for key in ("bai", "actor"))

    merged = json.loads((bai / "bai_merge.json").read_text())
    assert all(Path(inp["uri"].removeprefix("file://")).is_absolute() for inp in merged["inputs"].values())
    stops = [s["id"] for s in merged["tokenizers"]["stop_ids"]]
    eos = json.loads((bai / "generation_config.json").read_text())["eos_token_id"]
    assert (eos if isinstance(eos, list) else [eos]) == stops
    stores_lm_head = "lm_head.weight" in json.loads(
        (bai / "model.safetensors.index.json").read_text())["weight_map"] if (
        bai / "model.safetensors.index.json").is_file() else _has_tensor(bai / "model.safetensors", "lm_head.weight")
    assert json.loads((bai / "config.json").read_text())["tie_word_embeddings"] is (not stores_lm_head)

    # the actor: M_bai's kind of checkpoint with trained weights
    from bai_core.io.safetensors_file import dominant_float_dtype

    assert dominant_float_dtype(sorted(actor.glob("*.safetensors"))) == "bfloat16"
    for file in ("config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"):
        if (bai / file).is_file():
            assert (actor / file).read_bytes() == (bai / file).read_bytes(), file
    differs = json.loads((actor / "bai_train.json").read_text())["differs_from_start"]
    assert differs["dtype"] == {"start": "bfloat16", "actor": "bfloat16", "trained_in": "float32"}
    assert differs["trl_saved_config_not_kept"]["use_cache"] == {"start": True, "trl_saved": False}

    records = [json.loads(line) for line in (actor.parent / "metrics.jsonl").read_text().splitlines()]
    for record in records:  # 8 tokens are too few for a random model to stop: every completion was cut
        assert record["length/truncated_share"] == 1.0 and record["length/finished_share"] == 0.0
        assert record["reward/verifiable-math/mean"] == 0.0
    for scored in summary["outputs"]["scores"].values():
        assert scored["finished_share"] is not None and scored["rows"][0]["examples"] == 4


def _has_tensor(file: Path, name: str) -> bool:
    from bai_core.io.safetensors_file import read_header

    return name in read_header(file)[0]
