"""Where the app's model runs: `--device auto|cpu|cuda` (env GAIR_DEVICE), auto = CUDA when
torch sees a GPU; a device that is not there is a set-up message, not a traceback."""

from __future__ import annotations

import argparse

import pytest

from app import cli
from app.resources import Settings, SetupError, open_resources
from app.settings import check_device, embedder_device


def test_device_setting_from_flags_and_env():
    assert Settings.from_env([], environ={}).device == "auto"
    assert Settings.from_env([], environ={"GAIR_DEVICE": "CPU"}).device == "cpu"
    assert Settings.from_env(["--device", "cuda"], environ={"GAIR_DEVICE": "cpu"}).device == "cuda"
    assert check_device("cuda:1") == "cuda:1" and embedder_device("auto") is None
    assert embedder_device("cpu") == "cpu"
    with pytest.raises(SetupError, match="auto, cpu, cuda"):
        check_device("tpu")


def test_gair_app_passes_the_device(monkeypatch, tmp_path):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    monkeypatch.delenv("GAIR_DEVICE", raising=False)
    assert parser.parse_args(["app"]).device == "auto"
    args = parser.parse_args(["app", "--index", "idx", "--device", "cpu"])
    cmd = cli.command(args)
    assert cmd[cmd.index("--") + 1 :] == ["--index", "idx", "--device", "cpu"]
    (tmp_path / "manifest.json").write_text("{}")
    seen = {}
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd, env: seen.update(env) or 0)
    assert cli.run(parser.parse_args(["app", "--index", str(tmp_path), "--device", "cpu"])) == 0
    assert seen["GAIR_DEVICE"] == "cpu"  # the flag wins over an inherited GAIR_DEVICE


def test_auto_device_is_cuda_when_available(app_paths):
    import torch

    res = open_resources(Settings(index=str(app_paths["index"]), world=str(app_paths["world"])))
    assert res.index.embedder._kwargs["device"] is None  # auto: the Embedder decides
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert res.index.embedder.load().device.type == want
    cpu = open_resources(
        Settings(index=str(app_paths["index"]), world=str(app_paths["world"]), device="cpu")
    )
    assert cpu.index.embedder._kwargs["device"] == "cpu"


def test_cuda_without_a_gpu_is_a_setup_message(app_paths, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SetupError, match="no CUDA device"):
        open_resources(
            Settings(index=str(app_paths["index"]), world=str(app_paths["world"]), device="cuda")
        )
    with pytest.raises(SetupError, match="Unknown device"):
        open_resources(Settings(index=str(app_paths["index"]), device="tpu"))
