"""Code versions of workflow rules, derived from the code (standard library only).

Snakemake reruns a job when its script's text changes but does not follow the
script's imports. So each rule carries, as a param, a hash of every plexus module
its script can import: the import closure read from the source with :mod:`ast`
(imports inside functions included, so lazily imported modules count too, and the
``__init__`` of every package on the way). Editing a module reruns exactly the
rules whose closure holds it; there is no hand-kept table to drift.

Every ``snakemake`` start (a dry run, a run, each job of a cluster run) computes some thirty of
these versions, and parsing the package takes most of a second. So the versions are also kept on
disk (:func:`cached_version`), keyed by the digest of every byte of the package and of the script:
they are a pure function of those bytes, so a kept value is served only for exactly the code it was
computed from.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import tempfile
from functools import cache
from pathlib import Path

PACKAGE = "plexus"
#: the module of the tasks' base class (see :func:`task_closure`)
TASK_BASE = "plexus.tasks.base"


def module_path(src: Path, name: str) -> Path | None:
    """The file of module ``name`` under ``src`` (a package's ``__init__.py``), or None."""
    base = Path(src, *name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _statements(node: ast.AST):
    """Every statement in ``node`` (itself included), at any depth: an import is a statement, so the
    expressions, which make most of a tree, need no visit."""
    todo = [node]
    while todo:
        node = todo.pop()
        yield node
        for _, value in ast.iter_fields(node):
            if isinstance(value, list):
                todo.extend(item for item in value if isinstance(item, (ast.stmt, ast.excepthandler, ast.match_case)))


def _imported_names(tree: ast.AST, current: str, is_package: bool) -> set[str]:
    """Every module name an import statement in ``tree`` may load (maybe not plexus)."""
    names: set[str] = set()
    for node in _statements(tree):
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


# One workflow start reads and parses the same modules for many rules (a code version each): each
# file's bytes, tree and imports are kept per (path, size, mtime), so an edited file is read again.
def _stamp(path: str) -> tuple[str, int, int]:
    stat = Path(path).stat()
    return path, stat.st_size, stat.st_mtime_ns


@cache
def _stamped_source(stamp: tuple[str, int, int]) -> bytes:
    return Path(stamp[0]).read_bytes()


@cache
def _stamped_tree(stamp: tuple[str, int, int]) -> ast.Module:
    return ast.parse(_stamped_source(stamp), filename=stamp[0])


def _source(path: str) -> bytes:
    return _stamped_source(_stamp(path))


def _tree(path: str) -> ast.Module:
    return _stamped_tree(_stamp(path))


@cache
def _stamped_imports(stamp: tuple[str, int, int], src: str, name: str) -> frozenset[str]:
    found = _imported_names(_stamped_tree(stamp), name, Path(stamp[0]).name == "__init__.py")
    return frozenset(m for m in found if m.split(".")[0] == PACKAGE and module_path(Path(src), m))


def _direct_imports(src: str, name: str) -> frozenset[str]:
    return _stamped_imports(_stamp(str(module_path(Path(src), name))), src, name)


def closure(src: str | Path, roots) -> list[str]:
    """Sorted plexus modules reachable from ``roots`` (module names), parents included."""
    return list(_closure(str(Path(src).resolve()), tuple(roots)))


def _closure(src: str, roots: tuple[str, ...]) -> tuple[str, ...]:
    seen: set[str] = set()
    todo = [parent for root in roots for parent in _with_parents(root)]
    while todo:
        name = todo.pop()
        if name in seen or module_path(Path(src), name) is None:
            continue
        seen.add(name)
        for imported in _direct_imports(src, name):
            todo.extend(_with_parents(imported))
    return tuple(sorted(seen))


def script_modules(script: str | Path, src: str | Path) -> list[str]:
    """The plexus modules a workflow script imports itself."""
    found = _imported_names(_tree(str(script)), "__main__", False)
    return sorted(m for m in found if m.split(".")[0] == PACKAGE and module_path(Path(src), m))


def script_closure(script: str | Path, src: str | Path) -> list[str]:
    return closure(src, script_modules(script, src))


def code_version(script: str | Path, src: str | Path) -> str:
    """16 hex digits of SHA-256 over the names and bytes of the script's plexus closure."""
    return cached_version(script, src, "", "", lambda: _code_version(script, src))


def _code_version(script: str | Path, src: str | Path) -> str:
    digest = hashlib.sha256()
    for name in script_closure(script, src):
        digest.update(name.encode() + b"\0")
        digest.update(_source(str(module_path(Path(src), name))))
    return digest.hexdigest()[:16]


def _function_imports(tree: ast.Module, module: str, entry: str | list[str]) -> set[str]:
    """Modules imported by the module-level code of ``tree`` and inside the functions reachable
    from ``entry`` (a method or function name): names called in the module's own functions and
    methods are followed, so a stage method's helpers count; other functions' imports do not."""
    defs: dict[str, list[ast.AST]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defs.setdefault(node.name, []).append(node)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    defs.setdefault(item.name, []).append(item)
    top = ast.Module(body=[n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom, ast.If, ast.Try))],
                     type_ignores=[])
    names = _imported_names(top, module, False)
    # what the workflow's main process runs (a job's params, checks), not the job
    entries = [entry] if isinstance(entry, str) else list(entry)
    seen, todo = {"settings", "config_errors"} - set(entries), entries
    while todo:
        name = todo.pop()
        if name in seen or name not in defs:
            continue
        seen.add(name)
        for node in defs[name]:
            names |= _imported_names(node, module, False)
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name):
                    todo.append(sub.id)
                elif isinstance(sub, ast.Attribute):
                    todo.append(sub.attr)
    return names


def task_closure(src: str | Path, task_module: str, stage: str) -> list[str]:
    """The plexus modules one stage of a task can run (see :func:`_function_imports`), the task's
    own module excluded (:func:`task_code_version` hashes its bytes)."""
    path = module_path(Path(src), task_module)
    tree = _tree(str(path))
    # a stage the task inherits (figure_noise -> figure_study): the names the base's method calls
    entries = [stage]
    base = module_path(Path(src), TASK_BASE)
    for node in ast.walk(_tree(str(base))):
        if isinstance(node, ast.FunctionDef) and node.name == stage:
            entries += [sub.attr for sub in ast.walk(node) if isinstance(sub, ast.Attribute)]
    found = {m for m in _function_imports(tree, task_module, entries)
             if m.split(".")[0] == PACKAGE and module_path(Path(src), m)}
    parents = _with_parents(task_module)[:-1]
    return sorted(set(closure(src, [*found, *parents])) - {task_module})


def task_code_version(script: str | Path, src: str | Path, task_module: str, stage: str) -> str:
    """The code version of a stage rule that runs ``stage`` of a task: its script's closure, the
    task module's bytes and the closure of what that stage of the task can run."""
    return cached_version(script, src, task_module, stage,
                          lambda: _task_code_version(script, src, task_module, stage))


def _task_code_version(script: str | Path, src: str | Path, task_module: str, stage: str) -> str:
    digest = hashlib.sha256()
    names = sorted(set(script_closure(script, src)) | set(task_closure(src, task_module, stage)) | {task_module})
    for name in names:
        digest.update(name.encode() + b"\0")
        digest.update(_source(str(module_path(Path(src), name))))
    return digest.hexdigest()[:16]


# --- the versions kept on disk -------------------------------------------------------------------

#: the environment variable naming the folder of kept versions; empty: keep none
CACHE_ENV = "PLEXUS_CACHE_DIR"
#: at most this many package states are kept (the oldest file goes first)
CACHE_STATES = 64


def cache_dir() -> Path | None:
    """Where the versions are kept: ``$PLEXUS_CACHE_DIR``, else ``$XDG_CACHE_HOME/plexus`` (default
    ``~/.cache/plexus``); None where ``$PLEXUS_CACHE_DIR`` is empty (compute every time)."""
    if CACHE_ENV in os.environ:
        return Path(os.environ[CACHE_ENV]) if os.environ[CACHE_ENV] else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "plexus")


@cache
def _stamped_package_digest(stamps: tuple[tuple[str, int, int], ...], src: str) -> str:
    digest = hashlib.sha256()
    for stamp in stamps:
        digest.update(Path(stamp[0]).relative_to(src).as_posix().encode() + b"\0")
        digest.update(_stamped_source(stamp) + b"\0")
    return digest.hexdigest()


def package_digest(src: str | Path) -> str:
    """SHA-256 over the relative path and bytes of every ``.py`` file of the package under ``src``
    (what any code version can read: a file added, removed, renamed or edited changes it)."""
    src = str(Path(src).resolve())
    paths = sorted(str(p) for p in Path(src, PACKAGE).rglob("*.py") if "__pycache__" not in p.parts)
    return _stamped_package_digest(tuple(_stamp(p) for p in paths), src)


@cache
def _kept(path: str) -> dict:
    """The kept versions of one package state, read once per process (a later miss adds to it)."""
    try:
        kept = json.loads(Path(path).read_text())
        return kept if isinstance(kept, dict) else {}
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: compute


def cached_version(script, src, task_module: str, stage: str, compute) -> str:
    """The code version of (script, task module, stage), from the disk where this exact code's was
    kept before, else ``compute()`` (kept for the next start; a folder that cannot be written is
    only not used)."""
    folder = cache_dir()
    if folder is None:
        return compute()
    key = f"{hashlib.sha256(_source(str(script))).hexdigest()}:{task_module}:{stage}"
    path = folder / "code_versions" / f"{package_digest(src)}.json"
    kept = _kept(str(path))
    if key not in kept:
        kept[key] = compute()
        _keep(path, kept)
    return kept[key]


def _keep(path: Path, kept: dict) -> None:
    try:
        fresh = not path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # another start may have kept other entries meanwhile: keep theirs too
            kept.update({k: v for k, v in json.loads(path.read_text()).items() if k not in kept})
        except (OSError, ValueError, AttributeError):
            pass
        # a unique temporary name: the jobs of a cluster run may share this folder across nodes
        handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(kept, sort_keys=True, indent=0))
        os.replace(tmp, path)
        if fresh:
            states = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
            for old in states[:-CACHE_STATES]:
                old.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only home, a full disk: the versions are computed again next time
