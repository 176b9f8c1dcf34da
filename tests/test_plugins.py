"""Plug-ins (bai_core/plugins.py): a scheme, a prompt source, a verifier and a suite added by a plug-in reach the
stages that use them, as the demo family's do; nothing in the stages names the plug-in."""

from __future__ import annotations

import pytest

from bai_core import plugins
from bai_core.errors import BaiError


@pytest.fixture
def mirror_plugin(family):
    """A plug-in of the test's own: mirror://<role> is a member of the tiny synthetic family; mirror://rl is two
    prompts; `parity` is right when the final number's parity matches the answer's."""
    registry = plugins._loaded()
    saved = (dict(registry.schemes), dict(registry.prompt_schemes), dict(registry.verifiers))
    plugins.add_scheme(plugins.CheckpointScheme(name="mirror", form="mirror://<role>",
                                                fetch=lambda source, store: family[source[len("mirror://"):]]))
    plugins.add_prompt_scheme(plugins.PromptScheme(
        name="mirror", form="mirror://rl", rows=lambda source: [{"prompt": "2+2=", "answer": 4},
                                                               {"prompt": "1+2=", "answer": 3}]))
    plugins.add_verifier(plugins.Verifier(
        name="parity", correct=lambda text, answer, opened: int(text.split()[-1]) % 2 == int(answer) % 2,
        unreadable=lambda answer: None if str(answer).isdigit() else f"answer {answer!r} is not a number"))
    yield
    registry.schemes, registry.prompt_schemes, registry.verifiers = (dict(s) for s in saved)


def test_a_plugins_scheme_is_fetched_and_parsed_like_any_source(mirror_plugin, family):
    from bai_core.source_ref import SourceRef
    from bai_core.sources import fetch, resolvable_uri

    assert SourceRef.parse("mirror://instruct").scheme == "mirror"
    fetched = fetch("mirror://instruct")
    assert fetched.path == family["instruct"] and fetched.fingerprint.startswith("sha256:")
    assert resolvable_uri("mirror://instruct") == "mirror://instruct"
    with pytest.raises(BaiError, match=r"not a local folder, s3:// URI or hub id .*mirror://<role>"):
        SourceRef.parse("nothing-like-a-source")


def test_a_plugins_prompts_and_verifier_reach_the_train_config_and_the_answer_check(mirror_plugin):
    from bai_core.rl.config import RewardComponent
    from bai_core.rl.prompts import load_prompts
    from bai_core.rl.rewards import check_answers, verifier

    prompts = load_prompts("mirror://rl")
    assert [row["answer"] for row in prompts.rows] == [4, 3]
    assert RewardComponent(verifiable="parity").kind == "verifiable-parity"
    assert verifier("parity").correct("so 6", 4, False) and not verifier("parity").correct("so 5", 4, False)
    check_answers("parity", prompts.rows, "mirror://rl")
    with pytest.raises(BaiError, match=r"prompts x: row 2: answer 'two' is not a number"):
        check_answers("parity", [{"answer": 1}, {"answer": "two"}], "x")
    with pytest.raises(ValueError, match=r"verifiable: no verifier 'parityy' \(known: math, arithmetic, parity\)"):
        RewardComponent(verifiable="parityy")


def test_the_demo_family_registers_through_the_same_door():
    """The toy is found by lookup, as a user's plug-in is: its scheme, prompts, verifier and suite."""
    assert plugins.scheme_of("demo://demo/pretrained") == "demo"
    assert plugins.scheme_of("s3://bucket/x") is None
    assert plugins.prompt_scheme("demo") is not None and plugins.verifier("arithmetic") is not None
    assert [task.task for task in plugins.suite("demo").tasks] == ["bai_demo"]
    build = plugins.checkpoint_scheme("demo").builds("demo://test/instruct@1")
    assert (build.stage, build.arguments) == ("demo-family-test", {"size": "test", "seed": 1})
    assert plugins.checkpoint_scheme("demo").builds("demo://synthetic/instruct") is None
