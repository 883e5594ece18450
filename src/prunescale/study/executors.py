"""Where a study's variants run: in this process, in worker processes (``--jobs N``) or as Ray tasks on a
cluster (``--executor ray``). Every executor calls the same function per variant with the study's thread
count, collects what each variant reports, and keeps going when one fails: the others finish, the
failure is reported at the end, and a re-run resumes it.

Ray tasks may run on other nodes, each writing into the study folder on its own filesystem; the head
therefore writes a token into the folder and every task checks that it reads the same token before any
work, so a study without shared storage fails at once with the node and the path instead of losing its
results.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import socket
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from prunescale.errors import PrunescaleError

TOKEN = ".prunescale-token"
Work = Callable[..., list[str]]  # (spec_dict, stage index, out, threads, token) -> messages


@dataclass
class Failure:
    variant: str
    error: str


def write_token(out: Path) -> str:
    """A fresh token in the study folder, for the tasks to find on their nodes."""
    token = secrets.token_hex(8)
    (Path(out) / TOKEN).write_text(token)
    return token


def check_token(out: str, token: str | None) -> None:
    """Refuse to work in a study folder this node does not share with the head (no token, or another one)."""
    if token is None:
        return
    path = Path(out) / TOKEN
    seen = path.read_text().strip() if path.exists() else None
    if seen != token:
        raise PrunescaleError(
            f"node {socket.gethostname()} does not see the study folder {Path(out).resolve()} that the head writes "
            f"({'no' if seen is None else 'another'} {TOKEN} there): put the study folder on storage every node "
            "mounts at the same path (NFS, a cluster filesystem)")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[-1] if text else ''}" if not isinstance(exc, PrunescaleError) else text[0]


def run_local(work: Work, spec_dict: dict, todo: list[int], names: list[str], out: Path, threads: int,
              log: Callable[[str], None], advance: Callable[[], None]) -> list[Failure]:
    failures = []
    for i in todo:
        try:
            for m in work(spec_dict, i, str(out), threads, None):
                log(m)
        except Exception as exc:  # one variant's failure does not stop the others
            failures.append(Failure(names[i], _describe(exc)))
            log(f"failed {names[i]}: {failures[-1].error}")
        advance()
    return failures


def run_pool(work: Work, spec_dict: dict, todo: list[int], names: list[str], out: Path, threads: int, jobs: int,
             log: Callable[[str], None], advance: Callable[[], None]) -> list[Failure]:
    failures = []
    with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as pool:
        futures = {pool.submit(work, spec_dict, i, str(out), threads, None): i for i in todo}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                for m in fut.result():
                    log(m)
            except Exception as exc:
                failures.append(Failure(names[i], _describe(exc)))
                log(f"failed {names[i]}: {failures[-1].error}")
            advance()
    return failures


def ray_address(address: str | None) -> str | None:
    """The cluster to join: ``--ray-address``, else ``RAY_ADDRESS``, else None (a local Ray on this machine)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def run_ray(work: Work, spec_dict: dict, todo: list[int], names: list[str], out: Path, threads: int, gpus: int,
            address: str | None, log: Callable[[str], None], advance: Callable[[], None]) -> list[Failure]:
    """One task per variant: ``num_cpus`` = the study's threads and, when the study runs on CUDA, ``gpus``
    GPUs (one; vLLM's tensor-parallel size where it shards a model over several)."""
    try:
        import ray  # optional dependency (the ray extra)
    except ImportError:
        raise PrunescaleError("--executor ray needs ray: pip install 'prunescale[ray]'") from None
    address = ray_address(address)
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    most = max((n["Resources"].get("CPU", 0) for n in nodes), default=0)
    if threads > most:  # a task that asks for more CPUs than any node has would wait for ever
        raise PrunescaleError(f"each variant runs with {threads} CPU thread(s) but the largest Ray node has {most:g} "
                              "CPUs: set `threads:` in the study to at most that")
    if gpus and not any(n["Resources"].get("GPU", 0) >= gpus for n in nodes):
        raise PrunescaleError(f"each variant needs {gpus} GPU(s) on one node and no Ray node has that many")
    log(f"ray: {len(nodes)} node(s) at {address or 'a local cluster'}; one task per variant, {threads} CPU(s)"
        + (f", {gpus} GPU(s)" if gpus else "") + " each")
    token = write_token(out)
    task = ray.remote(num_cpus=threads, num_gpus=gpus, max_retries=0)(work)
    pending = {task.remote(spec_dict, i, str(out), threads, token): i for i in todo}
    failures = []
    while pending:
        (done,), _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done)
        try:
            for m in ray.get(done):
                log(m)
        except Exception as exc:  # RayTaskError wraps the task's own exception
            cause = getattr(exc, "cause", None) or exc
            failures.append(Failure(names[i], _describe(cause)))
            log(f"failed {names[i]}: {failures[-1].error}")
        advance()
    return failures
