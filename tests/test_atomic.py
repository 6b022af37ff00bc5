"""Crash leftovers, one-step checkpoint commits and umask-following modes (gair.atomic,
gair.checkpoint, gair.run_dir)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from gair.atomic import atomic_dir, atomic_path, locked_dir, recover_dir, write_text
from gair.run_dir import read_run_config

ROOT = Path(__file__).resolve().parents[1]


def temps(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f".{name}.*.tmp"))


def start_writer(body: str) -> subprocess.Popen:
    """A Python process that runs `body` (gair.atomic imported), prints 'ready' and then waits
    for a line on stdin before finishing."""
    script = "import sys\nfrom gair.atomic import atomic_dir, atomic_path\n" + textwrap.dedent(body)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


WRITER = """
with atomic_dir({d!r}) as d, atomic_path({f!r}) as f:
    (d / "part").write_text("from the child")
    f.write_text("from the child")
    print("ready", flush=True)
    sys.stdin.readline()
"""


# -- leftovers of killed writers ----------------------------------------------------------------
def test_temps_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    target, world = tmp_path / "out.json", tmp_path / "world"
    write_text(target, "old")
    proc = start_writer(WRITER.format(d=str(world), f=str(target)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert len(temps(tmp_path, "out.json")) == 1 and len(temps(tmp_path, "world")) == 1
    legacy = tmp_path / ".out.json.abc123xy.tmp"  # an unlocked temp (older code)
    legacy.write_text("half")
    assert target.read_text() == "old" and not world.exists()

    write_text(target, "new")
    with atomic_dir(world) as d:
        (d / "part").write_text("new")
    assert temps(tmp_path, "out.json") == [] and temps(tmp_path, "world") == []
    assert target.read_text() == "new" and (world / "part").read_text() == "new"


def test_temps_of_a_live_writer_are_kept(tmp_path):
    target, world = tmp_path / "out.json", tmp_path / "world"
    proc = start_writer(WRITER.format(d=str(world), f=str(target)))
    try:
        theirs = temps(tmp_path, "out.json") + temps(tmp_path, "world")
        assert len(theirs) == 2
        write_text(target, "parent")
        with atomic_dir(world) as d:
            (d / "part").write_text("parent")
        assert all(p.exists() for p in theirs)  # the child's temps survived our writes
        assert target.read_text() == "parent"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert target.read_text() == "from the child"  # ... and it finished its write (last wins)
    assert (world / "part").read_text() == "from the child"
    assert temps(tmp_path, "out.json") == [] and temps(tmp_path, "world") == []


def test_temps_of_another_thread_of_this_process_are_kept(tmp_path):
    target = tmp_path / "out.bin"
    inside, release, errors = threading.Event(), threading.Event(), []

    def writer():
        try:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"thread")
                inside.set()
                release.wait(30)
        except Exception as err:  # pragma: no cover - reported below
            errors.append(err)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(30)
    (theirs,) = temps(tmp_path, "out.bin")
    write_text(target, "main")
    assert theirs.exists() and target.read_text() == "main"
    release.set()
    t.join(30)
    assert not errors and target.read_bytes() == b"thread" and temps(tmp_path, "out.bin") == []


def test_a_dir_swap_killed_between_its_renames_keeps_the_old_copy(tmp_path):
    world = tmp_path / "world"
    with atomic_dir(world) as d:
        (d / "part").write_text("old")
    script = f"""
    import os
    from pathlib import Path
    from gair.atomic import atomic_dir
    real, calls = os.replace, []
    def dying_replace(*args):
        calls.append(args)
        if len(calls) == 2:  # world -> .world.old done; the temp -> world never happens
            os._exit(9)
        return real(*args)
    with atomic_dir({str(world)!r}) as d:
        (d / "part").write_text("new")
        os.replace = dying_replace
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT)
    assert done.returncode == 9
    old = tmp_path / ".world.old"
    assert not world.exists() and (old / "part").read_text() == "old"

    with atomic_dir(world) as d:  # the rerun restores the only good copy before writing
        assert (world / "part").read_text() == "old" and not old.exists()
        (d / "part").write_text("rerun")
    assert (world / "part").read_text() == "rerun"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["world"]  # no .old, no dead temp

    old.mkdir()  # a swap killed after its second rename: .old beside a complete world
    recover_dir(world)
    assert not old.exists() and (world / "part").read_text() == "rerun"


# -- file modes follow the umask ----------------------------------------------------------------
MODES = """
import json, os, stat, sys
from pathlib import Path
os.umask(int(sys.argv[1], 8))
from gair.atomic import atomic_dir, atomic_path, write_json
out = Path(sys.argv[2])
write_json(out / "file.json", {})
with atomic_dir(out / "dir") as d:
    (d / "sub").mkdir()
    write_json(d / "sub" / "inner.json", {})
    (d / "plain.txt").write_text("x")
def mode(p):
    return oct(stat.S_IMODE(os.stat(out / p).st_mode))
print(json.dumps({p: mode(p) for p in ["file.json", "dir", "dir/sub", "dir/sub/inner.json",
                                       "dir/plain.txt"]}))
"""


@pytest.mark.parametrize(
    ("umask", "file", "folder"), [("022", "0o644", "0o755"), ("077", "0o600", "0o700")]
)
def test_files_and_dirs_follow_the_umask(tmp_path, umask, file, folder):
    done = subprocess.run(
        [sys.executable, "-c", MODES, umask, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modes = json.loads(done.stdout)
    assert modes == {
        "file.json": file,
        "dir": folder,
        "dir/sub": folder,
        "dir/sub/inner.json": file,
        "dir/plain.txt": file,
    }


def test_umask_is_read_without_changing_it():
    from gair.atomic import umask

    mask = os.umask(0o027)
    try:
        assert umask() == 0o027 and os.umask(0o027) == 0o027
    finally:
        os.umask(mask)


# -- run-dir config checks ----------------------------------------------------------------------
def write_config(run: Path, **meta) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(json.dumps({"model": {}, **meta}))


@pytest.mark.parametrize("version", ["1", 1.0, True, None, [1]])
def test_a_non_integer_format_version_is_a_clear_error(tmp_path, version):
    write_config(tmp_path / "run", format_version=version)
    with pytest.raises(ValueError, match="format_version .* not an integer"):
        read_run_config(tmp_path / "run")


def test_a_newer_format_version_is_refused(tmp_path):
    write_config(tmp_path / "run", format_version=99)
    with pytest.raises(ValueError, match="this code reads"):
        read_run_config(tmp_path / "run")


# -- checkpoints: one commit --------------------------------------------------------------------
@pytest.fixture(scope="module")
def models():
    import torch

    from gair import build_model

    torch.manual_seed(1)
    old = build_model("tiny").eval()
    torch.manual_seed(2)
    new = build_model("tiny").eval()
    return old, new


def fingerprint(model) -> float:
    import torch

    with torch.no_grad():
        return float(sum(p.double().sum() for p in model.parameters()))


@pytest.fixture
def run(tmp_path, models):
    """A run dir holding the old model plus the other files a training run keeps there."""
    from gair import save_model

    run = save_model(models[0], tmp_path / "run", extra={"metrics": {"r@10": 0.5}})
    for name, data in [("metrics.csv", "step\n1\n"), ("last.ckpt", "resume"), ("eval.json", "{}")]:
        (run / name).write_text(data)
    return run


def others_intact(run: Path) -> bool:
    return [(run / n).read_text() for n in ("metrics.csv", "last.ckpt", "eval.json")] == [
        "step\n1\n",
        "resume",
        "{}",
    ]


def save_in_a_child_that_dies(model, run: Path, patch) -> int:
    """Fork; in the child, `patch(kill)` installs the fault (kill() = SIGKILL-like exit, no
    cleanup) and save_model runs. Returns the child's exit status (0: the save completed)."""
    from gair import save_model

    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        code = 1
        try:
            patch(lambda: os._exit(137))
            save_model(model, run)
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + 120
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked save hung")
        time.sleep(0.02)


def test_a_save_killed_before_its_commit_loads_the_old_model(run, models):
    import gair.checkpoint as ckpt

    def before_commit(kill):
        ckpt.write_json = lambda *a, **k: kill()

    assert save_in_a_child_that_dies(models[1], run, before_commit) == 137
    assert list(run.glob(".model.safetensors.*.staged"))  # the new weights, uncommitted
    assert fingerprint(ckpt.load_model(run)) == fingerprint(models[0])
    assert read_run_config(run)["metrics"] == {"r@10": 0.5} and others_intact(run)
    ckpt.save_model(models[1], run)  # the next save discards the uncommitted weights
    assert not list(run.glob(".model.safetensors.*"))
    assert fingerprint(ckpt.load_model(run)) == fingerprint(models[1])


def test_a_save_killed_after_its_commit_loads_the_new_model(run, models):
    import gair.checkpoint as ckpt

    def after_commit(kill):
        real = ckpt.write_json

        def commit_then_die(*args, **kw):
            real(*args, **kw)
            kill()

        ckpt.write_json = commit_then_die

    old_bytes = (run / "model.safetensors").read_bytes()
    assert save_in_a_child_that_dies(models[1], run, after_commit) == 137
    sha = json.loads((run / "config.json").read_text())["weights_sha256"]
    staged = run / f".model.safetensors.{sha}.staged"
    assert staged.is_file() and (run / "model.safetensors").read_bytes() == old_bytes

    with locked_dir(run):  # a reader that cannot finish the save (as in a read-only dir)
        assert fingerprint(ckpt.load_model(run)) == fingerprint(models[1])
        assert staged.is_file()
    read_run_config(run)  # any reader that can finishes it
    assert not staged.exists() and ckpt.file_sha256(run / "model.safetensors") == sha
    assert fingerprint(ckpt.load_model(run)) == fingerprint(models[1])
    assert read_run_config(run)["metrics"] == {"r@10": 0.5} and others_intact(run)


def kill_at(step: int, half_written: bool = False):
    """A fault for save_in_a_child_that_dies: die before the step-th file operation of the save
    (or, with half_written, right after the weights are written, truncating them)."""

    def install(kill):
        import gair.checkpoint as ckpt

        count = [0]

        def dying(fn):
            def wrapper(*args, **kw):
                count[0] += 1
                if count[0] == step:
                    kill()
                return fn(*args, **kw)

            return wrapper

        def half_then_die(state, path, **kw):
            real_save(state, path, **kw)
            Path(path).write_bytes(Path(path).read_bytes()[:1000])
            kill()

        real_save = ckpt.save_file
        ckpt.save_file = half_then_die if half_written else dying(real_save)
        for name in ("replace", "rename", "fsync", "unlink"):
            setattr(os, name, dying(getattr(os, name)))

    return install


def test_a_save_killed_at_any_step_loads_the_old_or_the_new_model(run, tmp_path, models):
    """Kill the save before each of its file operations in turn (and once with the weights
    half-written): every time the run dir loads as the complete old or new model, and the next
    save leaves only the run's files."""
    import gair.checkpoint as ckpt

    step_dir = tmp_path / "step"
    old, new = fingerprint(models[0]), fingerprint(models[1])
    outcomes = []
    for step in range(60):
        shutil.rmtree(step_dir, ignore_errors=True)
        shutil.copytree(run, step_dir)
        fault = kill_at(step, half_written=step == 0)
        status = save_in_a_child_that_dies(models[1], step_dir, fault)
        got = fingerprint(ckpt.load_model(step_dir))
        assert got in (old, new), f"killed at step {step}: neither model"
        assert others_intact(step_dir)
        outcomes.append((status, "new" if got == new else "old"))
        if status == 0:
            break
    assert outcomes[0] == (137, "old") and outcomes[-1] == (0, "new"), outcomes
    assert (137, "new") in outcomes, outcomes  # some kills fell after the commit
    ckpt.save_model(models[0], step_dir)
    assert sorted(p.name for p in step_dir.iterdir()) == sorted(p.name for p in run.iterdir())
    assert fingerprint(ckpt.load_model(step_dir)) == old


def test_a_config_without_the_weights_sha256_is_refused(run, models):
    from gair.checkpoint import checkpoint_hash, load_model

    meta = json.loads((run / "config.json").read_text())
    del meta["weights_sha256"]
    (run / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="no valid weights_sha256"):
        load_model(run)
    with pytest.raises(ValueError, match="no valid weights_sha256"):
        checkpoint_hash(run)
    assert fingerprint(load_model(run, verify=False)) == fingerprint(models[0])  # opt-out


def test_saved_files_follow_the_umask_and_nothing_else_is_left(run):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("model.safetensors", "config.json"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in run.iterdir()) == [
        "config.json",
        "eval.json",
        "last.ckpt",
        "metrics.csv",
        "model.safetensors",
    ]
