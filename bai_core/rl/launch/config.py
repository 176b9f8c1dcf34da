"""How the train stage runs past one process: `train.launch` (N processes per machine, M machines, a strategy), and
the `accelerate launch` command that starts the ranks. bai writes no launcher of its own: accelerate (over torchrun)
starts and tears down the ranks, each of which runs `python -m bai_core.rl.launch.worker JOB.json`; the same entry
point runs under torchrun, srun or a Kubernetes pod, which set the rank environment themselves.

What is in the train stage's cache key and what is not (`key_part`): the world size and the strategy (a config
file by its content) change the numbers, since each rank samples its own completions and the optimizer sees their
mean; the machine rank, the rank-0 address and its port only say where the ranks meet, so they are left out."""

from __future__ import annotations

import hashlib
import os
import shlex
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from bai_core.errors import BaiError
from bai_core.launcher import free_port
from bai_core.settings import Strict

# The strategies by name, each one of TRL's own accelerate configs (trl/accelerate_configs/), which the command line
# below completes with the process counts, the rendezvous and the precision.
STRATEGIES = {"ddp": "multi_gpu.yaml", "fsdp2": "fsdp2.yaml", "zero2": "zero2.yaml", "zero3": "zero3.yaml"}
# Where schedulers put the machine rank and the rank-0 address: torchrun / Kubeflow, a Kubernetes indexed Job, Slurm.
MACHINE_RANK_VARIABLES = ("BAI_MACHINE_RANK", "NODE_RANK", "GROUP_RANK", "JOB_COMPLETION_INDEX", "SLURM_NODEID")
# With `main_address: auto`, the address machine 0 tells the others (through the store), when its host name's is not
# the one they can reach (a pod's IP from the downward API, a second network interface).
ADVERTISE_VARIABLE = "BAI_ADVERTISE_ADDRESS"
AUTO = "auto"


class LaunchSettings(Strict):
    """`train.launch`: the ranks the train stage runs on. The default, one process, trains in the stage's own
    process as before; anything more is started with `accelerate launch`."""

    processes: int = Field(1, gt=0, description="Ranks per machine (one per GPU; on CPU, DDP over gloo).")
    machines: int = Field(1, gt=0, description="Machines, each running `processes` ranks.")
    strategy: str = Field("ddp", description="ddp, fsdp2, zero2, zero3 (TRL's accelerate configs), or the path of "
                                             "an accelerate config file of your own.")
    machine_rank: int | None = Field(None, ge=0, description="This machine's rank; default: from the scheduler's "
                                                              f"environment ({', '.join(MACHINE_RANK_VARIABLES)}).")
    main_address: str | None = Field(None, description="Rank 0's address; default MASTER_ADDR, or 127.0.0.1 on "
                                                       "one machine. `auto`: machine 0 finds its own address "
                                                       f"(${ADVERTISE_VARIABLE}, else its host name's) and the "
                                                       "others read it from the artifact store.")
    main_port: int | None = Field(None, gt=0, lt=65536, description="Rank 0's port; default MASTER_PORT, else a "
                                                                    "free port (one machine) or 29500.")
    timeout_s: int = Field(600, gt=0, description="How long ranks wait for each other (rendezvous, collectives) "
                                                  "before the stage fails.")

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value in STRATEGIES:
            return value
        path = Path(value).expanduser()
        if not path.is_file():
            raise ValueError(f"{value!r} is neither a strategy ({', '.join(STRATEGIES)}) nor a readable accelerate "
                             "config file")
        return str(path.resolve())

    @model_validator(mode="after")
    def _rank_in_range(self):
        if self.machine_rank is not None and self.machine_rank >= self.machines:
            raise ValueError(f"machine_rank {self.machine_rank} is not below machines ({self.machines})")
        return self

    @property
    def world_size(self) -> int:
        return self.processes * self.machines

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def key_part(self) -> dict:
        """What of the launch changes the result (see the module's docstring)."""
        strategy = self.strategy
        if strategy not in STRATEGIES:
            strategy = "sha256:" + hashlib.sha256(Path(strategy).read_bytes()).hexdigest()
        return {"world_size": self.world_size, "strategy": strategy}


@dataclass(frozen=True)
class Rendezvous:
    """Where and as which machine this launch meets the others."""

    machine_rank: int
    address: str
    port: int


def this_machine(launch: LaunchSettings, environ: dict | None = None) -> int:
    """This machine's rank: the setting, else the scheduler's environment, else 0."""
    environ = os.environ if environ is None else environ
    rank = launch.machine_rank
    if rank is None:
        found = next((environ[name] for name in MACHINE_RANK_VARIABLES if environ.get(name, "").strip()), "0")
        rank = _integer(found, "machine rank")
    if rank >= launch.machines:
        raise BaiError(f"train.launch: machine rank {rank} (from the environment) is not below machines "
                       f"({launch.machines})")
    return rank


def rendezvous(launch: LaunchSettings, environ: dict | None = None) -> Rendezvous:
    """The settings, completed from the scheduler's environment; one line naming what is missing. With `auto`, a
    machine other than 0 gets the address `auto`: it reads the real one from the store (rl/launch/machines.py)."""
    environ = os.environ if environ is None else environ
    rank = this_machine(launch, environ)
    address = launch.main_address or environ.get("MASTER_ADDR") or None
    if address is None:
        if launch.machines > 1:
            raise BaiError(f"train.launch.machines {launch.machines}: no rank-0 address; set train.launch.main_address"
                           f" or MASTER_ADDR, or main_address: {AUTO} to meet through the artifact store")
        address = "127.0.0.1"
    port = launch.main_port or (environ.get("MASTER_PORT") and _integer(environ["MASTER_PORT"], "MASTER_PORT"))
    if address == AUTO and rank == 0:
        address = environ.get(ADVERTISE_VARIABLE) or socket.gethostbyname(socket.gethostname())
        port = port or free_port(address)
    if not port:
        port = free_port() if launch.machines == 1 else 29500
    return Rendezvous(rank, address, port)


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise BaiError(f"train.launch: {what} {text!r} is not a number") from None


def accelerate_config(strategy: str) -> Path:
    if strategy not in STRATEGIES:
        return Path(strategy)
    import trl

    return Path(trl.__file__).parent / "accelerate_configs" / STRATEGIES[strategy]


def check_launch(launch: LaunchSettings, on_gpu: bool) -> Rendezvous:
    """What can be known before anything is merged: the rendezvous, and that the strategy can run here."""
    meet = rendezvous(launch)
    if launch.strategy in ("zero2", "zero3"):
        import importlib.util

        if importlib.util.find_spec("deepspeed") is None:
            raise BaiError(f"train.launch.strategy {launch.strategy}: DeepSpeed is not installed here "
                           "(pip install deepspeed), or use ddp or fsdp2")
        if not on_gpu:
            raise BaiError(f"train.launch.strategy {launch.strategy}: DeepSpeed ZeRO needs GPUs; on CPU use ddp")
    return meet


def launch_command(launch: LaunchSettings, meet: Rendezvous, job: Path, on_gpu: bool) -> list[str]:
    """`accelerate launch` for this machine's ranks, each running bai's worker on `job`.

    On CPU, DDP needs the multi-GPU launcher (torchrun underneath) with `use_cpu`, which the worker's TRL settings
    set: `accelerate launch --cpu --num_processes 2` starts one process, not two."""
    return [sys.executable, "-m", "accelerate.commands.launch",
            "--config_file", str(accelerate_config(launch.strategy)),
            "--num_processes", str(launch.world_size), "--num_machines", str(launch.machines),
            "--machine_rank", str(meet.machine_rank), "--main_process_ip", meet.address,
            "--main_process_port", str(meet.port), "--mixed_precision", "bf16" if on_gpu else "no",
            "--max_restarts", "0", "--monitor_interval", "1",
            "-m", "bai_core.rl.launch.worker", str(job)]


def shown(command: list[str]) -> str:
    return " ".join(shlex.quote(part) for part in command)
