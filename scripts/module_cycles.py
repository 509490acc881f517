#!/usr/bin/env python3
"""Lists import cycles between the source files of each crate.

An edge a -> b means file a names `crate::…` (or `super::…`) paths that
resolve to file b (the file defining the path's longest module prefix; a
re-export through a `mod.rs` counts as an edge to that `mod.rs`, and test
modules are left out). Prints each cycle (a strongly connected group of files)
and exits 1 when there is one, 0 otherwise.

    python3 scripts/module_cycles.py [crates/ai-usage-core ...]
"""

import re
import sys
from pathlib import Path

PATH = re.compile(r"\b(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super)((?:::[A-Za-z_][A-Za-z0-9_]*)*)::\{([^;]*)\};", re.S)


def module_of(src: Path, f: Path) -> list:
    rel = f.relative_to(src).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def file_of(src: Path, parts: list):
    """The file that defines the longest prefix of `parts`."""
    for n in range(len(parts), 0, -1):
        base = src.joinpath(*parts[:n])
        for cand in (base.with_suffix(".rs"), base / "mod.rs"):
            if cand.is_file():
                return cand
    return None


def strip_tests(text: str) -> str:
    # Test modules may import anything; only library code counts.
    i = text.find("#[cfg(test)]\nmod tests")
    return text if i < 0 else text[:i]


def edges(src: Path):
    graph = {}
    for f in sorted(src.rglob("*.rs")):
        me = module_of(src, f)
        # A `mod.rs`/`foo.rs` file's `super` is its parent module.
        parent = me[:-1]
        text = re.sub(r"//[^\n]*", "", strip_tests(f.read_text()))
        paths = []
        for root, prefix, group in USE_GROUP.findall(text):
            for item in re.split(r",", group):
                item = item.strip().split(" as ")[0].strip()
                if item and item not in ("self",) and not item.startswith("{"):
                    paths.append((root, prefix + "::" + item.split("::{")[0]))
        paths += PATH.findall(text)
        targets = set()
        for root, rest in paths:
            segs = [s for s in rest.split("::") if s]
            base = [] if root == "crate" else parent
            target = file_of(src, base + segs)
            if target is not None and target != f:
                targets.add(target)
        graph[f] = targets
    return graph


def cycles(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(group)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    root = Path(__file__).resolve().parent.parent
    crates = [Path(a) for a in sys.argv[1:]] or sorted((root / "crates").iterdir())
    found = False
    for c in crates:
        src = (c if c.is_absolute() else root / c) / "src"
        if not src.is_dir():
            continue
        graph = edges(src)
        for group in cycles(graph):
            found = True
            names = sorted(str(f.relative_to(src)) for f in group)
            print(f"{c.name}: cycle between {', '.join(names)}")
    if not found:
        print("no import cycles between files")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
