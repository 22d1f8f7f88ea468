"""Run one benchmark (``python -m bench container``) or all of them (``python -m bench``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import bench


def available() -> list[str]:
    return sorted(
        m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )


def main(argv: list[str]) -> int:
    names = available()
    chosen = [argv[0]] if argv and not argv[0].startswith("-") else names
    rest = argv[1:] if argv and not argv[0].startswith("-") else argv
    for name in chosen:
        if name not in names:
            print(f"unknown benchmark {name!r}; available: {', '.join(names)}", file=sys.stderr)
            return 2
        print(f"== bench {name} ==", flush=True)
        importlib.import_module(f"bench.bench_{name}").main(rest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
