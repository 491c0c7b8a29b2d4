"""Suites by name: where `latbench run NAME` and `latbench list` look, and what they find there.

Reads YAML only (no torch, nothing built): listing suites and resolving a name stay fast.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from latbench.errors import LatbenchError

SHIPPED_SUITES = Path(__file__).resolve().parent.parent / "suites"  # latbench/suites: in the wheel too
SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class SuiteEntry:
    """A suite `latbench list` shows: its name (run it by that), its file and its one-line description."""

    name: str
    path: Path
    about: str  # the suite's 'description' on one line, or '(unreadable: ...)'


def suite_dirs() -> list[Path]:
    """Where suites are found by name: ./suites, then the suites shipped with latbench."""
    return [Path("suites"), SHIPPED_SUITES]


def suite_files() -> list[Path]:
    """Every suite file of suite_dirs(), the first of each file only (./suites may be latbench's own)."""
    seen: set[Path] = set()
    found = []
    for d in suite_dirs():
        for p in sorted(d.glob("*.y*ml")) if d.is_dir() else []:
            if p.suffix in SUFFIXES and p.resolve() not in seen:
                seen.add(p.resolve())
                found.append(p)
    return found


def resolve_suite(path: Path) -> Path:
    """A suite argument: a file as given, or a name ('g1') looked up in suite_dirs()."""
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    for d in suite_dirs():
        for ext in SUFFIXES:
            if (d / f"{path}{ext}").is_file():
                return d / f"{path}{ext}"
    close = difflib.get_close_matches(str(path), sorted({p.stem for p in suite_files()}), n=1)
    raise LatbenchError(f"no suite file or suite named {str(path)!r}", where="latbench run",
                        hint=(f"did you mean {close[0]!r}? " if close else "")
                        + "give a path such as suites/g1.yaml, or a name that 'latbench list' shows")


def list_suites() -> list[SuiteEntry]:
    """The suites of suite_dirs() with their descriptions (an unreadable file is listed, not raised)."""
    import yaml

    entries = []
    for p in suite_files():
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
            about = " ".join(str(data.get("description", "") if isinstance(data, dict) else "").split())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            about = f"(unreadable: {(str(exc).splitlines() or [type(exc).__name__])[0]})"
        entries.append(SuiteEntry(p.stem, p, about))
    return entries
