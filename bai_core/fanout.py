"""Where independent runs go at once: N processes of a Dask LocalCluster on this machine, or the user's Dask
scheduler. One model for every fan-out bai does (tune's trials, `bai sweep` points, `bai compare` rows); the
flows turn it into Prefect's DaskTaskRunner (flows/dask_runner.py)."""

from __future__ import annotations

from pydantic import Field

from bai_core.errors import BaiError
from bai_core.settings import Strict


class Fanout(Strict):
    workers: int = Field(1, gt=0, description="Runs at once: above 1, a Dask LocalCluster of that many processes "
                                              "here, or that many at a time on `cluster`.")
    cluster: str | None = Field(None, description="A Dask scheduler's address (tcp://host:8786) to run on.")

    @property
    def concurrent(self) -> bool:
        return self.workers > 1 or self.cluster is not None

    def check(self, what: str) -> None:
        """A `cluster` where a Dask scheduler answers, or one line naming `what` (before anything runs)."""
        if self.cluster is not None:
            check_cluster(self.cluster, what)


def check_cluster(address: str, what: str = "cluster") -> None:
    """A Dask scheduler answers at `address`, or one line says it does not."""
    from distributed import Client

    try:
        Client(address, timeout=5).close()
    except Exception as e:  # OSError, TimeoutError, a malformed address: one line for the user
        raise BaiError(f"{what} {address}: no Dask scheduler answers there ({type(e).__name__}: "
                       f"{str(e).splitlines()[0][:120] if str(e) else 'no reply'})") from None
