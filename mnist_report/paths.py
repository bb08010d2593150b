"""Paths built from the project root found in code, never from the working directory."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def from_root(path: str | Path) -> Path:
    """An absolute path as is; a relative one relative to the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def shown(path: str | Path) -> str:
    """A path as the report shows it: relative to the project root when inside it, else with the
    user's home as ``~`` (the report names no user's home)."""
    path = Path(path).expanduser().resolve()
    for base, prefix in ((PROJECT_ROOT, ""), (Path.home().resolve(), "~/")):
        try:
            return prefix + str(path.relative_to(base))
        except ValueError:
            pass
    return str(path)
