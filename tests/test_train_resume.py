"""Kill -9 a real `gair train` mid-run, then `--resume`: it continues from the last checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gair import load_model
from train.checkpointing import RESUME_FILE, load_resume_state

ROOT = Path(__file__).resolve().parents[1]
MAX_STEPS = 24


def gair_train(run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gair.cli",
        "train",
        "--config",
        "test",
        "--out",
        str(run_dir),
        "--max-steps",
        str(MAX_STEPS),
        "--set",
        "trainer.max_epochs=100",
        "--set",
        "trainer.ckpt_every_n_steps=2",
        "--set",
        "data.synthetic_train=64",  # 4 steps per epoch: an export every 4 steps
        "--set",
        "data.val_samples=32",
        "--json",
        *extra,
    ]


def checkpoint_step(path: Path) -> int:
    try:
        return int(load_resume_state(path)["global_step"])
    except (ValueError, FileNotFoundError):
        return -1


def test_sigkill_then_resume_continues_from_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        gair_train(run), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while checkpoint_step(run / RESUME_FILE) < 6:  # past the first epoch's export (4)
            assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no resume checkpoint within 120 s"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    # after the kill: every file there is complete (temps of a killed writer aside)
    killed_at = checkpoint_step(run / RESUME_FILE)
    assert 6 <= killed_at < MAX_STEPS
    load_model(run)  # model.safetensors matches config.json's hash
    with open(run / "metrics.csv", newline="") as fh:
        list(csv.DictReader(fh))

    done = subprocess.run(
        gair_train(run, "--resume"), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["resumed_from_step"] == killed_at  # not from 0
    assert summary["steps_run"] == MAX_STEPS - killed_at
    assert summary["global_step"] == MAX_STEPS == checkpoint_step(run / RESUME_FILE)
    assert f"resuming {run} from global step {killed_at}" in done.stderr

    # no half-written or temp file left; logs continue without duplicated steps
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "hparams.yaml",
        "last.ckpt",
        "metrics.csv",
        "model.safetensors",
    ]
    assert json.loads((run / "config.json").read_text())["train"]["global_step"] == MAX_STEPS
    with open(run / "metrics.csv", newline="") as fh:
        train_steps = [int(r["step"]) for r in csv.DictReader(fh) if r.get("train/loss")]
    assert train_steps == sorted(set(train_steps)) and train_steps[-1] >= MAX_STEPS - 2
