"""Merge weights per tensor group (merge.groups): each group's tensors take its own w and alpha, bit for bit as an
independent computation; a group at the stage's own weight changes nothing, not even the stage's key; tune.groups
searches each group's weights."""

from __future__ import annotations

import json

import pytest
import torch

from bai_core.merge import MANIFEST_FILE, merge
from bai_core.merge.config import MergeJob, MergeSettings
from bai_core.merge.groups import group_of
from tests.test_merge_correctness import expected_bai, load_all


def test_each_group_takes_its_own_weights_and_the_others_the_stages(family, tmp_path):
    groups = {"attention": {"alpha": 0.0}, "mlp": {"instruct_weight": 1.0, "alpha": 0.25}}
    merge(MergeJob(**family, output=tmp_path / "bai", instruct_weight=0.3, alpha=0.7, groups=groups))
    merged = load_all(tmp_path / "bai")
    weights = {None: (0.3, 0.7), "attention": (0.3, 0.0), "mlp": (1.0, 0.25)}
    dtype = next(iter(merged.values())).dtype  # the family's
    expected = {group: expected_bai(family, w, alpha, dtype)[1] for group, (w, alpha) in weights.items()}
    seen = set()
    for name, tensor in merged.items():
        group = group_of(name) if group_of(name) in groups else None
        seen.add(group)
        assert torch.equal(tensor.view(torch.uint8), expected[group][name].view(torch.uint8)), name
    assert seen == {None, "attention", "mlp"}  # the family has tensors of each
    manifest = json.loads((tmp_path / "bai" / MANIFEST_FILE).read_text())
    assert manifest["stages"][1]["groups"] == {"attention": [{"source": "pretrained", "weight": 0.0},
                                                             {"source": "sft", "weight": 1.0}],
                                               "mlp": [{"source": "pretrained", "weight": 0.25},
                                                       {"source": "sft", "weight": 0.75}]}
    assert "sft[mlp] = 1*instruct + 0*reasoning" in manifest["formula"]


def test_a_group_at_the_stages_own_weight_is_the_merge_without_groups(family, tmp_path):
    """Same bytes, and the pipeline's merge stages keep the key they had without groups."""
    from bai_core.merge.stage import BaiMerge, SftMerge

    merge(MergeJob(**family, output=tmp_path / "plain", instruct_weight=0.3, alpha=0.7))
    merge(MergeJob(**family, output=tmp_path / "grouped", instruct_weight=0.3, alpha=0.7,
                   groups={"attention": {"instruct_weight": 0.3, "alpha": 0.7}}))
    assert (tmp_path / "plain" / "model.safetensors").read_bytes() == \
        (tmp_path / "grouped" / "model.safetensors").read_bytes()
    plain, same = MergeSettings(), MergeSettings(groups={"norms": {"instruct_weight": 0.5, "alpha": 0.5}})
    other = MergeSettings(groups={"norms": {"alpha": 0.2}})
    for Stage in (SftMerge, BaiMerge):
        params = lambda settings: Stage.parameters(type("S", (), {"merge": settings})())  # noqa: E731
        assert params(same) == params(plain)
    assert BaiMerge.parameters(type("S", (), {"merge": other})())["groups"] == {"norms": {"alpha": 0.2}}
    assert "groups" not in SftMerge.parameters(type("S", (), {"merge": other})())  # stage 1 is not touched


def test_an_unknown_group_is_one_line():
    from bai_core.config import PipelineConfig
    from bai_core.errors import BaiError
    from bai_core.settings import validated

    with pytest.raises(BaiError, match=r"^invalid merge.groups.attn.\[key\]: Input should be 'embeddings', "):
        validated(PipelineConfig, models={"pretrained": "a", "instruct": "b", "reasoning": "c"},
                  merge={"groups": {"attn": {"alpha": 0.1}}})


def test_tune_groups_are_searched_parameters_and_trial_0_is_the_config():
    from bai_core.tune.config import TuneSettings
    from bai_core.tune.study import Study

    settings = TuneSettings(w=0.5, groups=["attention", "mlp"], seed=3)
    assert list(settings.searched) == ["alpha", "alpha.attention", "alpha.mlp"]  # w is fixed, in every group
    study = Study(settings, {"w": 0.5, "alpha": 0.4})
    first, second = study.ask(), study.ask()
    assert first.groups == {"attention": {"instruct_weight": 0.5, "alpha": 0.4},
                            "mlp": {"instruct_weight": 0.5, "alpha": 0.4}}
    assert second.groups["attention"]["instruct_weight"] == 0.5
    assert second.groups["attention"]["alpha"] != second.groups["mlp"]["alpha"]  # searched apart


def test_real_checkpoints_tensor_names_fall_in_the_groups_labelled_by_eye():
    """Ten real architectures' tensor names (tests/data/tensor-names/, with sources): Qwen2, Llama 3, Mixtral,
    Gemma 1 and 2, Phi-3, Mistral, GPT-NeoX, Falcon."""
    import re
    from pathlib import Path

    data = Path(__file__).parent / "data" / "tensor-names"
    labels = dict(line.split("\t") for line in (data / "groups.tsv").read_text().splitlines()
                  if line and not line.startswith("#"))
    files = sorted(data.glob("*.txt"))
    assert len(files) >= 10
    for file in files:
        for name in file.read_text().split():
            assert (group_of(name) or "none") == labels[re.sub(r"\.\d+\.", ".N.", re.sub(r"\.\d+\.", ".N.", name))], \
                (file.name, name)
    assert set(labels.values()) == {"embeddings", "attention", "mlp", "norms", "lm_head"}


def test_bai_merge_takes_groups_on_the_command_line(tmp_path, capsys):
    from bai.cli import main
    from bai_core.demo.shipped import shipped_folder

    family = shipped_folder("test", 0)
    members = [f"--{role}={family / role}" for role in ("pretrained", "instruct", "reasoning")]
    assert main(["merge", *members, f"--output={tmp_path / 'bai'}", "--group", "attention:alpha=0.3",
                 "--group", "mlp:instruct_weight=0.7,alpha=0.2", "--json"]) == 0
    formula = json.loads((tmp_path / "bai" / MANIFEST_FILE).read_text())["formula"]
    assert "sft[mlp] = 0.7*instruct" in formula and "bai[attention] = 0.3*pretrained" in formula
    assert "bai[mlp] = 0.2*pretrained" in formula
    capsys.readouterr()
    assert main(["merge", *members, f"--output={tmp_path / 'other'}", "--group", "attention=0.3"]) == 1
    assert "bai: error: --group 'attention=0.3': expected GROUP:KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
