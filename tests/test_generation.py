"""train.generation: vLLM mapped onto TRL's own arguments, and refused in one line where it cannot run. vLLM is not
installable here (no GPU), so these check the mapping and the refusals; the generation itself is TRL's."""

from __future__ import annotations

import pytest

from bai_core.errors import BaiError
from bai_core.rl.config import TrainSettings
from bai_core.rl.generation import GenerationSettings, check_generation

TRAIN = {"reward": [{"verifiable": "arithmetic"}], "prompts": "demo://test/rl"}


@pytest.mark.parametrize("generation, arguments", [
    ({}, {}),
    ({"backend": "vllm"}, {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3,
                           "vllm_tensor_parallel_size": 1}),
    ({"backend": "vllm", "gpu_memory_utilization": 0.5, "tensor_parallel_size": 2},
     {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.5, "vllm_tensor_parallel_size": 2}),
    ({"backend": "vllm", "mode": "server", "server_url": "http://10.0.0.7:8000"},
     {"use_vllm": True, "vllm_mode": "server", "vllm_server_base_url": "http://10.0.0.7:8000"}),
])
def test_the_settings_become_trls_arguments_and_trl_accepts_them(generation, arguments):
    from trl import GRPOConfig, RLOOConfig

    settings = GenerationSettings(**generation)
    assert settings.trl_arguments() == arguments
    for config in (GRPOConfig, RLOOConfig):  # every name is one TRL's configs have
        assert set(arguments) <= set(config.__dataclass_fields__)


@pytest.mark.parametrize("generation, error", [
    ({"mode": "server"}, "mode: vLLM settings, but backend is transformers"),
    ({"backend": "vllm", "server_url": "http://h:8000"}, "server_url applies to server mode"),
    ({"backend": "vllm", "mode": "server", "tensor_parallel_size": 2}, "give it to the server"),
    ({"backend": "vllm", "mode": "server", "gpu_memory_utilization": 0.9}, "applies to colocate mode"),
    ({"backend": "vllm", "gpu_memory_utilization": 1.5}, "less than or equal to 1"),
])
def test_settings_that_do_not_go_together_are_named(generation, error):
    with pytest.raises(ValueError, match=error):
        TrainSettings(**TRAIN, generation=generation)


def test_vllm_through_trl_passthrough_is_pointed_to_train_generation():
    with pytest.raises(ValueError, match="trl.use_vllm: vLLM is set in train.generation"):
        TrainSettings(**TRAIN, trl={"use_vllm": True})


@pytest.mark.parametrize("installed, error", [
    (None, "vLLM is not installed here (pip install 'vllm>=0.22.0,<=0.31.0'), or use backend: transformers"),
    ("0.11.2", "vLLM 0.11.2 is installed, and TRL supports 0.22.0 to 0.31.0"),
    ("0.40.0+cu129", "vLLM 0.40.0+cu129 is installed"),
])
def test_vllm_missing_or_outside_trls_range_is_one_line(installed, error):
    with pytest.raises(BaiError, match=error.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        check_generation(GenerationSettings(backend="vllm"), installed)
    check_generation(GenerationSettings(backend="vllm"), "0.24.0+cu129")  # a supported build passes
    check_generation(GenerationSettings(), None)  # transformers needs no vLLM


def test_this_machine_refuses_vllm_before_anything_is_merged():
    """Not installed here: the real lookup says so (the check prepare_train runs before the merges)."""
    with pytest.raises(BaiError, match="vLLM is not installed here"):
        check_generation(GenerationSettings(backend="vllm"))


def test_where_the_server_is_does_not_change_the_key_but_the_backend_does():
    from bai_core.rl.stage import ActorInit, TrainInputs, TrainStage
    from bai_core.storage import StorageConfig

    inputs = TrainInputs(init=ActorInit(name="bai", source="x", fingerprint="sha256:0"), rewards=[],
                         prompts={"fingerprint": "sha256:1"})

    def key(generation: dict) -> str:
        return TrainStage(inputs, TrainSettings(**TRAIN, generation=generation), StorageConfig(uri="/tmp/x")).key

    server = {"backend": "vllm", "mode": "server"}
    assert key({**server, "server_url": "http://a:8000"}) == key({**server, "server_url": "http://b:9000"})
    assert key(server) != key({}) != key({"backend": "vllm"})


def test_trls_settings_in_effect_are_recorded_as_used_bai_trl_or_trls_default(tmp_path):
    """The record is read back from the TRL config the run trains with: bai's settings, the user's `trl:` and TRL's
    own defaults, JSON as the manifest stores it."""
    import json

    from bai_core.rl.trainer import in_effect, trl_config

    settings = TrainSettings(**TRAIN, batch_size=16, kl_coef=0.01, trl={"loss_type": "grpo", "top_p": 0.9})
    recorded = in_effect(trl_config(settings, tmp_path, on_gpu=False))
    assert json.loads(json.dumps(recorded)) == recorded
    assert (recorded["beta"], recorded["loss_type"], recorded["top_p"]) == (0.01, "grpo", 0.9)
    assert recorded["scale_rewards"] == "group" and recorded["lr_scheduler_type"] == "linear"  # TRL's defaults
    assert recorded["per_device_train_batch_size"] == 16 and recorded["use_vllm"] is False


@pytest.mark.parametrize("generation", [{}, {"backend": "vllm", "mode": "server", "server_url": "http://h:8000"},
                                        {"backend": "vllm", "gpu_memory_utilization": 0.6}])
def test_a_dumped_config_reads_back(generation):
    """What Prefect parameters and the rank workers' job files carry: every field, defaults included."""
    settings = TrainSettings(**TRAIN, generation=generation)
    assert TrainSettings.model_validate(settings.model_dump(mode="json")) == settings
