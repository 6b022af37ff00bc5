"""Atomic file and directory writes: everything the product writes goes to a temp path beside its
target and is renamed over it only when complete, so a crash leaves the old complete target or
the new complete one, never a half-written one. Data is fsynced before the rename and the parent
directory after it, so the result also survives a power loss.

Leftovers of killed writers. Every temp is a directory `.NAME.RANDOM.tmp` beside NAME (for a
file it holds the file being written, and any temps the writing library makes itself) and its
writer holds an `flock` on that directory's fd until the temp is renamed or removed. The kernel
drops a lock when its holder exits or is killed, so a lock that can be taken means a dead writer:
each write of NAME first removes the `.NAME.*.tmp` siblings whose lock it can take (leftovers of
killed runs) and never one whose lock is held (a live writer, whatever its pid, host or container;
pids are not trusted, they are reused). A writer checks once locked that its temp is still the
one at that name (a sweep may take it in the instant between mkdtemp and flock) and makes another
if not. This process's own temps are never probed (an NFS-emulated flock would let us take it,
then drop it). Where flock fails (no fcntl, NFS directory fds) nothing is swept: a leftover only
costs space.

Directory swap. `atomic_dir` replaces an existing NAME by renaming NAME -> `.NAME.old`, the temp
-> NAME, then deleting `.NAME.old`. A kill between the two renames leaves no NAME, only
`.NAME.old`, the last good copy: the next `atomic_dir` of NAME (or `recover_dir`) renames it back
before writing. A `.NAME.old` beside an existing NAME is a finished swap's leftover and is
deleted (NAME only ever appears complete).

Permissions. Files get 0666 & ~umask and directories 0777 & ~umask, like `open`/`mkdir` (mkstemp
and mkdtemp alone make them private). The umask is read from /proc/self/status (Linux) rather
than set and restored with os.umask, which is process-global and races other threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # no flock: nothing is swept
    fcntl = None

log = logging.getLogger(__name__)

_own: set[str] = set()  # temps this process is writing
_umask_lock = threading.Lock()


def umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _umask_lock:  # fallback: set and restore (racy only against other threads' creates)
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def file_mode() -> int:
    return 0o666 & ~umask()


def dir_mode() -> int:
    return 0o777 & ~umask()


def _lock(fd: int, wait: bool = True) -> bool:
    """flock(LOCK_EX) on fd; False when another holder has it or flock is unsupported."""
    if fcntl is None:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


@contextlib.contextmanager
def locked_dir(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on directory `path` itself; yields whether it is held (False with
    wait=False when another open holds it, or where flock is unsupported)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        yield _lock(fd, wait)
    finally:
        os.close(fd)


def _remove(path: str | os.PathLike) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def remove_stale_temps(directory: str | os.PathLike, name: str | None = None) -> list[str]:
    """Remove the temps in `directory` (of target `name`, or of any target) whose writer is gone;
    returns their names."""
    target = re.escape(name) if name is not None else r".+"
    pattern = re.compile(rf"\.{target}\.[^./]+\.tmp")
    removed = []
    try:
        entries = [e for e in os.scandir(directory) if pattern.fullmatch(e.name)]
    except OSError:
        return removed
    for entry in entries:
        if entry.path in _own:
            continue
        flags = os.O_RDONLY if entry.is_dir(follow_symlinks=False) else os.O_RDWR
        try:
            fd = os.open(entry.path, flags | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd, wait=False) and os.path.samestat(os.fstat(fd), os.lstat(entry.path)):
                _remove(entry.path)
                removed.append(entry.name)
        except OSError:
            pass
        finally:
            os.close(fd)
    if removed:
        log.info("removed temp(s) of a killed writer in %s: %s", directory, removed)
    return removed


def _new_temp(target: Path) -> tuple[Path, int]:
    """A locked temp directory beside `target` (fd held: closing it releases the lock)."""
    while True:
        tmp = tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except FileNotFoundError:  # a sweep took it already
            continue
        _own.add(tmp)
        _lock(fd)
        try:
            if os.path.samestat(os.fstat(fd), os.lstat(tmp)):
                os.chmod(tmp, dir_mode())
                return Path(tmp), fd
        except FileNotFoundError:  # a sweep took it before our lock: make another
            pass
        _own.discard(tmp)
        os.close(fd)


def _release(tmp: Path, fd: int) -> None:
    _remove(tmp)  # gone already when it was renamed into place
    _own.discard(str(tmp))
    os.close(fd)  # the lock goes last: no unlocked temp of a live writer is ever visible


def fsync_dir(path: str | os.PathLike) -> None:
    """Make renames in directory `path` durable (where the filesystem supports it)."""
    _fsync(path, is_dir=True)


def _fsync(path: str | os.PathLike, is_dir: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory
        pass
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            _fsync(os.path.join(dirpath, f))
        _fsync(dirpath, is_dir=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, durable: bool = True) -> Iterator[Path]:
    """Yield a temp path for `path` (an empty file named like it, in a temp directory beside
    it); on success rename it over `path`, with mode 0666 & ~umask.

    Writers that replace the file (safetensors writes its own temp and renames it) are fine:
    the lock is on the temp directory, which also holds their own temps. `durable=False`
    skips the fsyncs (caches that can be rebuilt).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent, path.name)
    tmp_dir, fd = _new_temp(path)
    tmp = tmp_dir / path.name
    try:
        tmp.open("xb").close()
        yield tmp
        os.chmod(tmp, file_mode())
        if durable:
            _fsync(tmp)
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    finally:
        _release(tmp_dir, fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def recover_dir(path: str | os.PathLike) -> None:
    """Finish what a killed `atomic_dir` swap left: restore `.NAME.old` when NAME is missing (the
    kill fell between the two renames), delete it when NAME exists."""
    path = Path(path)
    old = _old(path)
    if not os.path.lexists(old):
        return
    if os.path.lexists(path):
        _remove(old)
        return
    with contextlib.suppress(FileNotFoundError):  # another process restored it first
        os.replace(old, path)
        fsync_dir(path.parent)
        log.warning("restored %s from %s (a replace of it was killed midway)", path, old.name)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp directory beside `path` (mode 0777 & ~umask); on success fsync its tree and
    replace `path` with it (the old one removed)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    remove_stale_temps(path.parent, path.name)
    tmp, fd = _new_temp(path)
    try:
        yield tmp
        _fsync_tree(tmp)
        if os.path.lexists(path):
            old = _old(path)
            _remove(old)
            os.replace(path, old)
            os.replace(tmp, path)  # a kill before this leaves only .NAME.old: see recover_dir
            fsync_dir(path.parent)
            _remove(old)
        else:
            os.replace(tmp, path)
            fsync_dir(path.parent)
    finally:
        _release(tmp, fd)
