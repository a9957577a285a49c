"""Fail unless every package pinned in a lock file is installed at exactly that version.

Run by docker/Dockerfile after ``pip install -r requirements.lock && pip check``: pip exits 0
when it leaves a base-image package at another version than the lock names (it only warns),
so the image would not be the environment the tests ran in. Usage::

    python docker/check_env.py requirements.lock
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock_text: str) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line (comments and hashes skipped)."""
    out: dict[str, str] = {}
    for line in lock_text.splitlines():
        m = PIN.match(line.strip())
        if m:
            out[normalize(m.group(1))] = m.group(2)
    return out


def installed() -> dict[str, str]:
    return {
        normalize(d.metadata["Name"]): d.version
        for d in metadata.distributions()
        if d.metadata["Name"]
    }


def mismatches(wanted: dict[str, str], have: dict[str, str]) -> list[str]:
    problems = []
    for name, version in sorted(wanted.items()):
        got = have.get(name)
        if got is None:
            problems.append(f"{name}=={version}: not installed")
        elif got != version:
            problems.append(f"{name}=={version}: {got} installed")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_env.py LOCKFILE", file=sys.stderr)
        return 2
    wanted = pins(Path(argv[0]).read_text())
    if not wanted:
        print(f"{argv[0]}: no name==version pins found", file=sys.stderr)
        return 2
    have = installed()
    problems = mismatches(wanted, have)
    extra = sorted(set(have) - set(wanted))
    if problems:
        print(f"{len(problems)} package(s) differ from {argv[0]}:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{len(wanted)} locked packages installed at their locked versions")
    if extra:
        print(f"not in the lock (from the base image or build tools): {', '.join(extra)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
