"""Code versions of workflow rules, derived from the code (standard library only).

Snakemake reruns a job when its script's text changes but does not follow the
script's imports. So each rule carries, as a param, a hash of every plexus module
its script can import: the import closure read from the source with :mod:`ast`
(imports inside functions included, so lazily imported modules count too, and the
``__init__`` of every package on the way). Editing a module reruns exactly the
rules whose closure holds it; there is no hand-kept table to drift.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

PACKAGE = "plexus"


def module_path(src: Path, name: str) -> Path | None:
    """The file of module ``name`` under ``src`` (a package's ``__init__.py``), or None."""
    base = Path(src, *name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported_names(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every module name an import statement in ``tree`` may load (maybe not plexus)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the current package
                package = current if is_package else current.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{node.module}" if node.module else package
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import submodule`
    return names


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


@cache
def _direct_imports(src: str, name: str) -> frozenset[str]:
    path = module_path(Path(src), name)
    tree = ast.parse(path.read_bytes(), filename=str(path))
    found = _imported_names(tree, name, path.name == "__init__.py")
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and module_path(Path(src), m))


def closure(src: str | Path, roots) -> list[str]:
    """Sorted plexus modules reachable from ``roots`` (module names), parents included."""
    src = str(Path(src).resolve())
    seen: set[str] = set()
    todo = [parent for root in roots for parent in _with_parents(root)]
    while todo:
        name = todo.pop()
        if name in seen or module_path(Path(src), name) is None:
            continue
        seen.add(name)
        for imported in _direct_imports(src, name):
            todo.extend(_with_parents(imported))
    return sorted(seen)


def script_modules(script: str | Path, src: str | Path) -> list[str]:
    """The plexus modules a workflow script imports itself."""
    tree = ast.parse(Path(script).read_bytes(), filename=str(script))
    found = _imported_names(tree, "__main__", False)
    return sorted(m for m in found if m.split(".")[0] == PACKAGE and module_path(Path(src), m))


def script_closure(script: str | Path, src: str | Path) -> list[str]:
    return closure(src, script_modules(script, src))


def code_version(script: str | Path, src: str | Path) -> str:
    """16 hex digits of SHA-256 over the names and bytes of the script's plexus closure."""
    digest = hashlib.sha256()
    for name in script_closure(script, src):
        digest.update(name.encode() + b"\0")
        digest.update(module_path(Path(src), name).read_bytes())
    return digest.hexdigest()[:16]
