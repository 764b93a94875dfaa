"""One GPU per multirun job: job k takes GPU k mod (GPUs visible); nothing changes elsewhere."""

from __future__ import annotations

import pytest
import torch

from src.runtime import devices as device_module
from src.runtime.devices import job_gpu, resolve_device, trainer_devices
from src.runtime.errors import AdvPurifyError


def test_jobs_spread_over_the_gpus_round_robin():
    assert [job_gpu(k, 4) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert job_gpu(None, 4) is None  # a single run keeps the default card
    assert job_gpu(3, 1) is None  # one card: nothing to choose
    assert job_gpu(3, 0) is None


@pytest.fixture
def four_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)


def test_a_multirun_job_resolves_to_its_own_gpu(four_gpus, monkeypatch):
    monkeypatch.setattr(device_module, "multirun_job_number", lambda: 6)
    assert resolve_device("auto") == torch.device("cuda:2")
    assert resolve_device("cuda") == torch.device("cuda:2")
    assert resolve_device("cpu") == torch.device("cpu")
    assert trainer_devices("gpu", 1) == [2]
    assert trainer_devices("auto", 1) == [2]
    assert trainer_devices("cpu", 1) == 1
    assert trainer_devices("gpu", 2) == 2  # an explicit multi-GPU run is left as asked


def test_a_single_run_keeps_the_default_gpu(four_gpus, monkeypatch):
    monkeypatch.setattr(device_module, "multirun_job_number", lambda: None)
    assert resolve_device("auto") == torch.device("cuda")
    assert trainer_devices("gpu", 1) == 1


def test_no_gpu_and_unknown_names_are_clear(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(AdvPurifyError, match="no GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(AdvPurifyError, match="device=tpu is unknown"):
        resolve_device("tpu")
