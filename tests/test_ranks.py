"""The train stage on several processes (`train.launch`): accelerate starts two CPU ranks (DDP over gloo) that run
bai's worker; the stage's own process follows rank 0, stops the ranks, names a failed one, and a rerun resumes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from bai_core.config import PipelineConfig
from bai_core.errors import BaiError
from bai_core.rl.launch.config import LaunchSettings, launch_command, rendezvous

TRAIN = {"reward": [{"model": "demo://test/reward"}], "prompts": "demo://test/rl", "steps": 4, "batch_size": 8,
         "generations": 4, "max_completion_length": 32, "save_every": 2, "length_bucket": 16, "detect_every": 2,
         "launch": {"processes": 2}}
BAI = [sys.executable, "-m", "bai.cli"]


def write_config(folder: Path, name: str = "ranks", **train) -> Path:
    config = {"name": name, "storage": {"uri": str(folder / "store")},
              "models": {r: f"demo://test/{r}" for r in ("pretrained", "instruct", "reasoning")},
              "train": {**TRAIN, **train}}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metric_steps(path: Path) -> list[int]:
    return [json.loads(line)["step"] for line in path.read_text().splitlines()]


# --- what is checked before anything runs (no server, no family) ---

@pytest.mark.parametrize("launch, error", [
    ({"processes": 0}, "greater than 0"),
    ({"strategy": "zero4"}, "'zero4' is neither a strategy (ddp, fsdp2, zero2, zero3) nor a readable accelerate"),
    ({"machines": 2, "machine_rank": 2}, "machine_rank 2 is not below machines (2)"),
])
def test_bad_launch_settings_are_named_when_the_config_is_read(launch, error):
    with pytest.raises(ValueError, match=error.replace("(", r"\(").replace(")", r"\)")):
        PipelineConfig(models={"pretrained": "a/b", "instruct": "a/c", "reasoning": "a/d"},
                       train={**TRAIN, "launch": launch})


def test_a_batch_that_does_not_split_over_the_ranks_is_refused():
    with pytest.raises(ValueError, match="batch_size 8 does not split evenly over 3 ranks"):
        PipelineConfig(models={"pretrained": "a/b", "instruct": "a/c", "reasoning": "a/d"},
                       train={**TRAIN, "launch": {"processes": 3}, "generations": 2})


def test_the_rendezvous_comes_from_the_scheduler_and_two_machines_need_an_address():
    two = LaunchSettings(processes=2, machines=2)
    with pytest.raises(BaiError, match="no rank-0 address; set train.launch.main_address or MASTER_ADDR, or "
                                       "main_address: auto"):
        rendezvous(two, {})
    meet = rendezvous(two, {"MASTER_ADDR": "10.0.0.5", "MASTER_PORT": "29400", "JOB_COMPLETION_INDEX": "1"})
    assert (meet.machine_rank, meet.address, meet.port) == (1, "10.0.0.5", 29400)
    assert rendezvous(two, {"MASTER_ADDR": "h", "SLURM_NODEID": "1"}).machine_rank == 1
    with pytest.raises(BaiError, match="machine rank 3 .* is not below machines"):
        rendezvous(two, {"MASTER_ADDR": "h", "NODE_RANK": "3"})
    one = rendezvous(LaunchSettings(processes=2), {})
    assert one.address == "127.0.0.1" and one.machine_rank == 0
    # auto: machine 0 listens on its own address and a free port, which the others read from the store
    auto = LaunchSettings(processes=2, machines=2, main_address="auto")
    leader = rendezvous(auto, {"BAI_ADVERTISE_ADDRESS": "127.0.0.1", "NODE_RANK": "0"})
    assert leader.address == "127.0.0.1" and leader.port > 0
    assert rendezvous(auto, {"NODE_RANK": "1"}).address == "auto"


def test_the_command_is_accelerates_with_trls_config_and_the_key_ignores_where_ranks_meet(tmp_path):
    launch = LaunchSettings(processes=2, machines=2, machine_rank=1, main_address="10.0.0.5", main_port=29400)
    command = launch_command(launch, rendezvous(launch, {}), tmp_path / "job.json", on_gpu=False)
    assert command[1:3] == ["-m", "accelerate.commands.launch"]
    assert command[command.index("--config_file") + 1].endswith("trl/accelerate_configs/multi_gpu.yaml")
    assert command[command.index("--num_processes") + 1] == "4"  # accelerate counts every machine's ranks
    assert command[command.index("--machine_rank") + 1] == "1"
    assert command[-3:] == ["-m", "bai_core.rl.launch.worker", str(tmp_path / "job.json")]
    elsewhere = LaunchSettings(processes=2, machines=2, machine_rank=0, main_address="10.9.9.9", main_port=1234)
    assert elsewhere.key_part() == launch.key_part() == {"world_size": 4, "strategy": "ddp"}
    assert LaunchSettings(processes=4).key_part() == launch.key_part()  # 4 ranks, however placed
    own = tmp_path / "mine.yaml"
    own.write_text("distributed_type: MULTI_GPU\n")
    assert LaunchSettings(processes=2, strategy=str(own)).key_part()["strategy"].startswith("sha256:")


def joining_stage(tmp_path, timeout_s: int = 600):
    """A train stage as machine 1 of 2 sees it (inputs by fingerprint: nothing is fetched before machine 0 speaks)."""
    from bai_core.rl.config import TrainSettings
    from bai_core.rl.stage import ActorInit, TrainInputs, TrainStage
    from bai_core.storage import StorageConfig

    settings = TrainSettings.model_validate({**TRAIN, "launch": {"processes": 1, "machines": 2, "machine_rank": 1,
                                                                 "main_address": "auto", "timeout_s": timeout_s}})
    inputs = TrainInputs(init=ActorInit(name="reasoning", source="demo://test/reasoning", fingerprint="sha256:1"),
                         rewards=[], prompts={"fingerprint": "sha256:2"})
    return TrainStage(inputs, settings, StorageConfig(uri=str(tmp_path / "store")))


def test_a_joining_machine_that_machine_0_never_meets_fails_in_one_line(tmp_path):
    from bai_core.rl.launch.machines import join_training

    started = time.monotonic()
    with pytest.raises(BaiError, match=r"train: machine 1 of 2 waited 2 s and machine 0 did not start training in "
                                       r".*\(train.launch.timeout_s\)"):
        join_training(joining_stage(tmp_path, timeout_s=2), 1)
    assert time.monotonic() - started < 10


def test_a_joining_machine_takes_machine_0s_abort_as_the_result(tmp_path):
    """`abort_on` stopped machine 0's run: the other machines end with the same verdict, not after a timeout."""
    from bai_core import layout
    from bai_core.rl.launch.machines import join_training

    stage = joining_stage(tmp_path)
    verdicts = {"aborted": {"detector": "collapse", "step": 40, "reason": "length fell to 0.2 of L0"}}
    stage.store.put_text(f"{layout.train_folder(stage.key)}/verdicts.json", json.dumps(verdicts))
    with pytest.raises(BaiError, match="train stopped at step 40: Sequence Length Collapse detected"):
        join_training(stage, 1)


def test_deepspeed_is_refused_in_one_line_where_it_cannot_run():
    from bai_core.rl.launch.config import check_launch

    with pytest.raises(BaiError, match="train.launch.strategy zero3: DeepSpeed"):
        check_launch(LaunchSettings(processes=2, strategy="zero3"), on_gpu=False)


# --- two CPU ranks through `bai run` ---

@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "demo_store")
def test_two_ranks_train_through_bai_run_and_a_rerun_is_cached(tmp_path):
    from bai_core.fingerprint import cache_dir

    config = write_config(tmp_path)
    proc = subprocess.run([*BAI, "run", str(config), "--json"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    states = {row["stage"]: row["state"] for row in summary["stages"]}
    assert states["train"] == "Completed"
    metrics = Path(summary["outputs"]["metrics"].removeprefix("file://"))
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    # rank 0's record covers both ranks' completions: 8 a step, 4 from each
    assert all(sum(v for k, v in r.items() if k.startswith("count_by_length/")) == 8 for r in records)
    # two ranks ran: each wrote its log in the run's work folder
    workdir = cache_dir() / "train" / metrics.parent.name
    assert sorted(p.name for p in workdir.glob("rank-*.log")) == ["rank-0.log", "rank-1.log"]
    assert "--num_processes 2" in " ".join(json.loads((workdir / "launched.json").read_text())["command"])

    from transformers import AutoModelForCausalLM, AutoTokenizer

    actor = Path(summary["outputs"]["actor"].removeprefix("file://"))
    in_effect = json.loads((actor / "bai_train.json").read_text())["trl_in_effect"]
    assert in_effect["per_device_train_batch_size"] == 4  # the step's 8 completions, 4 from each rank
    model, tokenizer = AutoModelForCausalLM.from_pretrained(actor), AutoTokenizer.from_pretrained(actor)
    prompt = tokenizer("<s>user: 12 + 3</s>", return_tensors="pt")
    assert model.generate(**prompt, max_new_tokens=4, do_sample=False).shape[1] > prompt["input_ids"].shape[1]

    again = subprocess.run([*BAI, "run", str(config), "--json"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {row["stage"]: row["state"] for row in json.loads(again.stdout)["stages"]}["train"] == "Cached"


def start(config: Path) -> subprocess.Popen:
    return subprocess.Popen([*BAI, "run", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def workers_of(proc: subprocess.Popen) -> list:
    import psutil

    return [p for p in psutil.Process(proc.pid).children(recursive=True)
            if "bai_core.rl.launch.worker" in " ".join(p.cmdline()) and "accelerate" not in " ".join(p.cmdline())]


def wait_for_step(store: Path, step: int, proc: subprocess.Popen, timeout: float = 300) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        found = list((store / "train").glob("*/metrics.jsonl"))
        if found and len(metric_steps(found[0])) >= step:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"training never reached step {step}")


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "demo_store")
def test_sigterm_stops_every_rank_and_the_rerun_resumes(tmp_path):
    import psutil

    config = write_config(tmp_path, name="stopped", steps=10, save_every=3)
    proc = start(config)  # left running by a failure here, it is killed with its group by tests/conftest.py
    metrics = wait_for_step(tmp_path / "store", 4, proc)
    workers = workers_of(proc)
    assert len(workers) == 2
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rest = proc.communicate(timeout=30)[1].strip().splitlines()
    _, alive = psutil.wait_procs(workers, timeout=max(0.1, 10 - (time.monotonic() - sent)))
    assert alive == [], f"ranks still running 10 s after SIGTERM: {[p.pid for p in alive]}"
    assert proc.returncode == 143
    assert rest[-1].startswith("bai: stopped by SIGTERM during train"), rest
    assert not (metrics.parent / "actor").exists()
    checkpoint = json.loads((metrics.parent / "checkpoint" / "_bai_complete.json").read_text())["step"]
    assert checkpoint in (3, 6, 9)

    resumed = subprocess.run([*BAI, "run", str(config)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from its checkpoint at step {checkpoint}" in resumed.stderr
    assert metric_steps(metrics) == list(range(1, 11))  # no step missing, none twice


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_api", "demo_store")
def test_a_rank_that_dies_fails_the_stage_in_one_line_nothing_hangs_and_the_rerun_resumes(tmp_path):
    config = write_config(tmp_path, name="died", steps=8, save_every=3)
    proc = start(config)
    metrics = wait_for_step(tmp_path / "store", 4, proc)  # past the first checkpoint
    [rank1] = [p for p in workers_of(proc) if p.environ().get("RANK") == "1"]
    rank1.kill()
    stderr = proc.communicate(timeout=120)[1]  # bounded: a hang fails here, and the guard kills what is left
    assert proc.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("bai: error: train: rank 1 of 2 failed (killed by SIGKILL); its last line:"), last
    assert "Traceback" not in stderr
    assert not (metrics.parent / "actor").exists()

    checkpoint = json.loads((metrics.parent / "checkpoint" / "_bai_complete.json").read_text())["step"]
    resumed = subprocess.run([*BAI, "run", str(config)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from its checkpoint at step {checkpoint}" in resumed.stderr
    assert metric_steps(metrics) == list(range(1, 9))
