"""Where a run computes: `device=auto` takes a GPU when one is visible.

In a Hydra multirun on a machine with several GPUs (`launcher=joblib`), job k takes GPU
k mod (GPUs visible), so `hydra.launcher.n_jobs=<GPUs>` puts one job on each card instead of
all of them on cuda:0. A cluster launcher (`launcher=slurm`) hands each job its own card, so
each sees one GPU and uses it. Training follows the same choice (`trainer_devices`).
"""

from __future__ import annotations

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from src.runtime.errors import AdvPurifyError


def multirun_job_number() -> int | None:
    """This job's number in a Hydra multirun, or None outside one."""
    if not HydraConfig.initialized():
        return None
    hydra_cfg = HydraConfig.get()
    return hydra_cfg.job.num if hydra_cfg.mode == RunMode.MULTIRUN else None


def job_gpu(job_number: int | None, gpus: int) -> int | None:
    """The GPU a multirun job pins to, or None where there is no choice to make."""
    if job_number is None or gpus < 2:
        return None
    return job_number % gpus


def resolve_device(device: str) -> torch.device:
    if device not in ("auto", "cpu", "cuda"):
        raise AdvPurifyError(f"device={device} is unknown: choose auto, cpu or cuda")
    if device == "cpu" or (device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise AdvPurifyError("device=cuda but no GPU is visible: use device=cpu or device=auto")
    index = job_gpu(multirun_job_number(), torch.cuda.device_count())
    return torch.device("cuda" if index is None else f"cuda:{index}")


def trainer_devices(accelerator: str, devices: object) -> object:
    """Lightning's `devices` for this job: the job's own GPU in a multi-GPU multirun, else as set."""
    index = job_gpu(multirun_job_number(), torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if index is None or accelerator not in ("auto", "gpu", "cuda") or devices != 1:
        return devices
    return [index]
