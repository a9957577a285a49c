"""The git + DVC data repository under ``SATSEG_HOME/data`` (created on first use).

git and DVC are driven with argument lists and DVC's Python API, never shell strings. The
repository gets a local git identity so commits work on a bare machine, DVC analytics and
update checks are off (nothing may leave the machine), and the remote URL lives in
``.dvc/config.local`` so it always follows ``SATSEG_DVC_REMOTE`` without a commit.
DVC links its cache by hardlink, so a version costs no extra disk beyond the remote copy.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from satseg.config import Settings
from satseg.io.locks import file_lock

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REMOTE = "storage"
GIT_USER = ("satseg", "satseg@localhost")


class VersioningError(RuntimeError):
    """git/DVC failed or a version does not exist."""


def repo_lock(settings: Settings) -> contextlib.AbstractContextManager[None]:
    return file_lock(settings.state / "versioning.lock")


def dataset_lock(settings: Settings, dataset: str) -> contextlib.AbstractContextManager[None]:
    """Held while ``processed/<dataset>`` is rebuilt, versioned or checked out."""
    return file_lock(settings.state / f"dataset-{dataset}.lock")


def git(root: Path, *args: str, check: bool = True) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    r = subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, env=env, check=False
    )
    if check and r.returncode != 0:
        raise VersioningError(
            f"git {' '.join(args)} failed: {r.stderr.strip() or r.stdout.strip()}"
        )
    return r.stdout


def _quiet_dvc() -> None:
    """DVC logs CLI hints ("To track the changes with git, run: ...") at INFO; we do that."""
    logging.getLogger("dvc").setLevel(logging.WARNING)


@contextlib.contextmanager
def dvc_repo(root: Path) -> Iterator[Any]:
    from dvc.repo import Repo

    _quiet_dvc()
    repo = Repo(str(root))
    try:
        yield repo
    finally:
        repo.close()


def ensure_repo(settings: Settings) -> Path:
    """Initialise git + DVC in ``settings.data_repo`` if needed; point DVC at the remote."""
    root = settings.data_repo
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", GIT_USER[0])
    git(root, "config", "user.email", GIT_USER[1])
    git(root, "config", "commit.gpgsign", "false")
    git(root, "config", "tag.gpgsign", "false")
    if not (root / ".dvc").exists():
        from dvc.repo import Repo

        _quiet_dvc()
        Repo.init(str(root)).close()
        with dvc_repo(root) as repo, repo.config.edit("repo") as conf:
            conf["core"]["analytics"] = False
            conf["core"]["check_update"] = False
            conf["cache"]["type"] = "hardlink,copy"
        git(root, "add", ".dvc/config", ".dvc/.gitignore", ".dvcignore")
        git(root, "commit", "-q", "-m", "Initialise satseg data repository")
    url = settings.dvc_remote_url
    with dvc_repo(root) as repo:
        current = repo.config.get("remote", {}).get(REMOTE, {}).get("url")
        if current != url:
            with repo.config.edit("local") as conf:
                conf["remote"][REMOTE] = {"url": url}
                conf["core"]["remote"] = REMOTE
    if "://" not in url:
        Path(url).mkdir(parents=True, exist_ok=True)
    return root
