"""Run the benchmarks: ``python -m benchmarks [NAME ...] [--quick]`` (``make bench`` runs all)."""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _available() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}"
    )


def _replace_sections(sections: list[str], command: str) -> None:
    """Put freshly run sections into RESULTS.md in place of their namesakes (same ``## `` title),
    each stamped with the command and date that made it; the other sections stay as they were."""
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    head, *old = text.split("\n## ")
    by_title = {part.split("\n", 1)[0]: "## " + part for part in old}
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    for section in sections:
        title, _, body = section.removeprefix("## ").partition("\n")
        stamp = (
            f"\n_Section made by `{command}` on {dt.date.today().isoformat()}: {_machine()}; "
            f"load average {load}._\n"
        )
        by_title[title] = f"## {title}\n{stamp}{body}"
    parts = [head.rstrip("\n") + "\n"] + [part.rstrip("\n") + "\n" for part in by_title.values()]
    path.write_text("\n".join(parts))
    print(f"updated {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"any of: {', '.join(_available())}")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args(argv)
    names = args.names or _available()
    unknown = sorted(set(names) - set(_available()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")

    sections = []
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"== {name} ==", flush=True)
        section = module.run(quick=args.quick)
        print(section, flush=True)
        sections.append(section)

    if not args.quick and args.names:
        _replace_sections(sections, f"python -m benchmarks {' '.join(names)}")
    if not args.quick and not args.names:
        command = "make bench"
        header = (
            "# Benchmark results\n\n"
            f"Made by `{command}` on {dt.date.today().isoformat()}: {_machine()}.\n"
            "Peers run in the same process on the same inputs; ratios are Periscope / peer.\n"
            "The machine is shared and noisy: compare ratios, not absolute figures, across runs.\n"
        )
        (HERE / "RESULTS.md").write_text(header + "\n" + "\n".join(sections))
        print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
