"""Mutation testing for one source file: do the tests notice a one-token bug?

Usage::

    .venv/bin/python tools/mutate.py src/payhook/events/_money.py \\
        --tests tests/unit/events tests/unit/providers/test_fuzz_parsers.py

Every mutant changes one token of the file (see ``OPERATORS`` below). Each one is written
into a private copy of the package (never into the working tree), the given tests are run
against it with ``pytest -x -q``, and the mutant is *killed* when they fail. Survivors are
listed with a stable id ``path:line:col:operator``; a survivor that cannot be killed because
it does not change behaviour is recorded, with its reason, in the equivalents file
(``tools/mutation-equivalents.txt``) and then does not count against the *adjusted* score.

Lines marked ``# pragma: no mutate`` are skipped. Docstrings, annotations, ``__all__``,
f-string text and exception messages are never mutated (they are prose, not behaviour).
See docs/mutation-testing.md.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import io
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tokenize
import warnings
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NoReturn

REPO = Path(__file__).resolve().parent.parent
DEFAULT_EQUIVALENTS = REPO / "tools" / "mutation-equivalents.txt"

# One mutant per comparison: ordering operators move their boundary, the others are negated.
_COMPARE = {
    "<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==",
    "is": "is not", "is not": "is", "in": "not in", "not in": "in",
}  # fmt: skip
_ARITH = {"+": "-", "-": "+", "*": "/", "/": "*", "//": "/", "%": "//", "**": "*"}
_BOOLOP = {"and": "or", "or": "and"}
_REGEX_FUNCS = frozenset({"compile", "match", "fullmatch", "search", "sub", "split", "findall"})
# Regex rewrites inside raw-string patterns: (operator, pattern in the literal, replacement).
_REGEX_REWRITES = (
    ("regex-anchor", re.compile(r"\\Z"), "$"),
    ("regex-anchor", re.compile(r"\\A|(?<![\\\[])\^"), ""),
    ("regex-class", re.compile(r"\[1-9\]"), "[0-9]"),
    ("regex-class", re.compile(r"\[0-9\]"), "[1-9]"),
)
_REGEX_BOUNDS = re.compile(r"(?<!\\)\{(\d+)(?:,(\d*))?\}")
_NO_MUTATE = "pragma: no mutate"

OPERATORS = {
    "compare": "comparison flipped (< <=, > >=, == !=, is / is not, in / not in)",
    "drop-not": "`not` removed",
    "boolop": "`and` / `or` swapped",
    "arith": "arithmetic operator changed (+ -, * /, // /, % //, ** *)",
    "number+1": "numeric constant plus one",
    "number-1": "numeric constant minus one",
    "bool": "True / False swapped",
    "string": 'string constant changed ("s" -> "XXsXX", "" -> "XX")',
    "delete-raise": "`raise` statement replaced by `pass`",
    "regex-anchor": r"regex anchor changed (\Z -> $, \A or ^ removed)",
    "regex-class": "regex digit class changed ([1-9] <-> [0-9])",
    "regex-bound": "regex repetition bound plus or minus one",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Mutant:
    """One single-token change: replace source[start:end] (character offsets) by ``new``."""

    path: str
    line: int
    col: int  # 1-based, in characters
    operator: str
    start: int
    end: int
    old: str
    new: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}:{self.col}:{self.operator}"

    def apply(self, source: str) -> str:
        return source[: self.start] + self.new + source[self.end :]


class _Positions:
    """Converts ast (line, UTF-8 byte column) and tokenize (line, char column) to offsets."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines(keepends=True)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def of_char(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def of_ast(self, line: int, byte_col: int) -> int:
        text = self.lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8")
        return self.starts[line - 1] + len(text)

    def line_col(self, offset: int) -> tuple[int, int]:
        line = max(i for i, start in enumerate(self.starts[:-1]) if start <= offset)
        return line + 1, offset - self.starts[line] + 1


class _Finder(ast.NodeVisitor):
    """Walks the module and records every mutant, skipping prose and annotations."""

    def __init__(self, path: str, source: str) -> None:
        self.path = path
        self.source = source
        self.pos = _Positions(source)
        self.tokens = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type in (tokenize.OP, tokenize.NAME)
        ]
        self.skip_lines = {i + 1 for i, line in enumerate(self.pos.lines) if _NO_MUTATE in line}
        self.mutants: list[Mutant] = []
        self._prose: set[int] = set()  # id() of string constants that are prose

    # -- recording -------------------------------------------------------------------------

    def _add(self, operator: str, start: int, end: int, new: str) -> None:
        line, col = self.pos.line_col(start)
        if line in self.skip_lines:
            return
        old = self.source[start:end]
        self.mutants.append(Mutant(self.path, line, col, operator, start, end, old, new))

    def _node_span(self, node: ast.AST) -> tuple[int, int]:
        start = self.pos.of_ast(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.pos.of_ast(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def _tokens_between(self, start: int, end: int) -> list[tokenize.TokenInfo]:
        """Operator/name tokens strictly between two offsets, parentheses left out."""
        found = []
        for tok in self.tokens:
            offset = self.pos.of_char(*tok.start)
            if offset >= end:
                break
            if offset >= start and tok.string not in ("(", ")"):
                found.append(tok)
        return found

    def _operator_span(self, left: ast.AST, right: ast.AST) -> tuple[int, int]:
        """Where the operator between two operands is (callers check what they find)."""
        gap_start, gap_end = self._node_span(left)[1], self._node_span(right)[0]
        toks = self._tokens_between(gap_start, gap_end)
        if toks:
            return self.pos.of_char(*toks[0].start), self.pos.of_char(*toks[-1].end)
        # Inside an f-string (one token before Python 3.12): the gap's text, parentheses
        # and spaces trimmed.
        inner = re.search(r"[^\s()](?:.*[^\s()])?", self.source[gap_start:gap_end], re.DOTALL)
        if inner is None:
            return gap_start, gap_start
        return gap_start + inner.start(), gap_start + inner.end()

    # -- prose that is never mutated -------------------------------------------------------

    def visit_Expr(self, node: ast.Expr) -> None:
        # A string statement does nothing: a docstring, or an attribute's docstring.
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for child in (*node.bases, *node.keywords, *node.decorator_list, *node.body):
            self.visit(child)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        args = node.args
        for default in (*args.defaults, *args.kw_defaults):
            if default is not None:
                self.visit(default)
        for child in (*node.decorator_list, *node.body):
            self.visit(child)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Assign(self, node: ast.Assign) -> None:
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        self.generic_visit(node)

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                self.visit(value.value)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        first = node.args[0] if node.args else None
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            if name.endswith(("Error", "Exception", "Warning")):
                self._prose.add(id(first))
            elif name in _REGEX_FUNCS and self._is_re(func):
                self._prose.add(id(first))
                self._regex(first)
        self.generic_visit(node)

    @staticmethod
    def _is_re(func: ast.expr) -> bool:
        return isinstance(func, ast.Attribute) and getattr(func.value, "id", "") == "re"

    # -- mutation operators ----------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i in range(len(node.ops)):
            start, end = self._operator_span(operands[i], operands[i + 1])
            old = " ".join(self.source[start:end].split())
            if old in _COMPARE:
                self._add("compare", start, end, _COMPARE[old])
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            start = self._node_span(node)[0]
            end = start + len("not")
            while self.source[end] in " \t":  # "not (a or b)" keeps its parenthesis
                end += 1
            self._add("drop-not", start, end, "")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        for left, right in zip(node.values, node.values[1:], strict=False):
            start, end = self._operator_span(left, right)
            old = self.source[start:end]
            if old in _BOOLOP:
                self._add("boolop", start, end, _BOOLOP[old])
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        start, end = self._operator_span(node.left, node.right)
        old = self.source[start:end]
        if old in _ARITH:
            self._add("arith", start, end, _ARITH[old])
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        start, end = self._operator_span(node.target, node.value)
        old = self.source[start:end]
        if old[:-1] in _ARITH:
            self._add("arith", start, end, _ARITH[old[:-1]] + "=")
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        start, end = self._node_span(node)
        self._add("delete-raise", start, end, "pass")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        start, end = self._node_span(node)
        if isinstance(value, bool):
            self._add("bool", start, end, str(not value))
        elif isinstance(value, int | float):
            self._add("number+1", start, end, repr(value + 1))
            self._add("number-1", start, end, repr(value - 1))
        elif isinstance(value, str) and id(node) not in self._prose:
            self._add("string", start, end, repr(f"XX{value}XX" if value else "XX"))

    def _regex(self, node: ast.Constant) -> None:
        start, end = self._node_span(node)
        literal = self.source[start:end]
        if not literal.lower().startswith(("r'", 'r"')):
            return  # only raw-string patterns: escapes would make the rewrite ambiguous
        for operator, pattern, replacement in _REGEX_REWRITES:
            for match in pattern.finditer(literal):
                self._add(operator, start + match.start(), start + match.end(), replacement)
        for match in _REGEX_BOUNDS.finditer(literal):
            low, high = int(match[1]), match[2]
            for bound, group in ((low, 1), (int(high) if high else None, 2)):
                if bound is None:
                    continue
                a, b = start + match.start(group), start + match.end(group)
                self._add("regex-bound", a, b, str(bound + 1))
                if bound > 0:
                    self._add("regex-bound", a, b, str(bound - 1))


def find_mutants(path: Path) -> list[Mutant]:
    """Every mutant of one file, in source order, ids unique."""
    source = path.read_text(encoding="utf-8")
    finder = _Finder(_display(path), source)
    finder.visit(ast.parse(source, filename=str(path)))
    mutants: list[Mutant] = []
    seen: dict[str, int] = {}
    for mutant in sorted(finder.mutants, key=lambda m: (m.start, m.operator, m.new)):
        count = seen.get(mutant.id, 0)
        seen[mutant.id] = count + 1
        if count:  # two mutants at one spot with one operator (e.g. regex bound +1 / -1)
            mutant = dataclasses.replace(mutant, operator=f"{mutant.operator}#{count + 1}")
        mutants.append(mutant)
    for mutant in mutants:  # every mutant must still be valid Python
        compile(mutant.apply(source), str(path), "exec", dont_inherit=True)
    return mutants


def scopes(path: Path) -> dict[str, tuple[int, int]]:
    """Named spans of a file, as (first line, last line): each top-level function and class,
    each method as ``Class.method``, and each module-level assignment by its target name."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    spans: dict[str, tuple[int, int]] = {}

    def span(node: ast.stmt) -> tuple[int, int]:
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        return first, node.end_lineno or node.lineno

    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            spans[node.name] = span(node)
            if isinstance(node, ast.ClassDef):
                for child in node.body:
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                        spans[f"{node.name}.{child.name}"] = span(child)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    spans[target.id] = span(node)
    return spans


def in_scope(mutants: Sequence[Mutant], spans: Sequence[tuple[int, int]]) -> list[Mutant]:
    """The mutants whose line lies in one of ``spans``."""
    return [m for m in mutants if any(a <= m.line <= b for a, b in spans)]


def _display(path: Path) -> str:
    resolved = path.resolve()
    try:
        return resolved.relative_to(REPO).as_posix()
    except ValueError:
        return resolved.as_posix()


@dataclasses.dataclass(frozen=True, slots=True)
class Equivalent:
    """One entry of the equivalents file: the mutant's id, the source line it mutates (as
    ``strip()`` leaves it; ``None`` in old entries without one) and the reason."""

    id: str
    code: str | None
    reason: str

    @property
    def path(self) -> str:
        return self.id.split(":", 1)[0]

    @property
    def line(self) -> int:
        return int(self.id.split(":")[1])

    @property
    def col(self) -> int:
        return int(self.id.split(":")[2])

    @property
    def operator(self) -> str:
        return self.id.split(":", 3)[3]


_ENTRY = re.compile(r"(?P<id>\S+)\s+(?:`(?P<code>[^`]*)`\s+)?(?P<reason>.*)")


def load_equivalents(path: Path | None) -> dict[str, Equivalent]:
    """``id  `source line`  reason`` lines (the source line is optional); ``#`` starts a
    comment line."""
    if path is None or not path.exists():
        return {}
    known: dict[str, Equivalent] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENTRY.fullmatch(line)
        if match is None:  # an id alone
            known[line] = Equivalent(line, None, "")
            continue
        known[match["id"]] = Equivalent(match["id"], match["code"], match["reason"].strip())
    return known


def match_equivalents(
    mutants: Sequence[Mutant], equivalents: dict[str, Equivalent], source: str
) -> tuple[dict[str, Equivalent], list[str]]:
    """Which mutants the file's entries name: ``{mutant id: entry}``, and notes to print.

    An entry matches the mutant with its id, provided that mutant's source line is still the
    entry's line. When lines above it moved, an entry that records its source line matches
    the mutant with the same operator and column in an identical line (the nearest such
    line when there are several), and a note asks for the id to be updated (``--rekey``
    does it).
    """
    lines = source.splitlines()
    by_id = {m.id: m for m in mutants}
    path = mutants[0].path if mutants else ""
    matched: dict[str, Equivalent] = {}
    notes: list[str] = []
    for entry in equivalents.values():
        if entry.path != path:
            continue
        mutant = by_id.get(entry.id)
        if mutant is not None and (
            entry.code is None or lines[mutant.line - 1].strip() == entry.code
        ):
            matched[mutant.id] = entry
            continue
        candidates = [
            m
            for m in mutants
            if entry.code is not None
            and (m.operator, m.col) == (entry.operator, entry.col)
            and lines[m.line - 1].strip() == entry.code
            and m.id not in matched
        ]
        if candidates:
            moved = min(candidates, key=lambda m: abs(m.line - entry.line))
            matched[moved.id] = entry
            notes.append(f"note: {entry.id} has moved to {moved.id}: run with --rekey")
        else:
            notes.append(f"note: {entry.id} matches no mutant: update or remove it")
    return matched, notes


def rekey(path: Path, renames: dict[str, str]) -> None:
    """Rewrite the equivalents file with each old id replaced by its new one."""
    out = []
    for raw in path.read_text(encoding="utf-8").splitlines(keepends=True):
        first = raw.split(maxsplit=1)[0] if raw.strip() else ""
        if first in renames:
            raw = raw.replace(first, renames[first], 1)
        out.append(raw)
    path.write_text("".join(out), encoding="utf-8")


# -- running -------------------------------------------------------------------------------


def _package_root(path: Path) -> Path:
    """The directory holding the file's top-level package (what goes on sys.path)."""
    top = path.resolve().parent
    if not (top / "__init__.py").exists():
        raise SystemExit(f"{path} is not inside a package")
    while (top.parent / "__init__.py").exists():
        top = top.parent
    return top


class _Workspace:
    """A private copy of the package and a warm pytest worker process running in it.

    Mutants are written into the copy, never into the working tree. The worker has imported
    everything the tests need except the package itself, and forks once per mutant, so each
    run costs the tests, not the interpreter's and the plugins' start-up.
    """

    def __init__(self, root: Path, package: Path, target: Path) -> None:
        self.dir = root
        self.package = package.name
        self.copy = root / "import" / package.name
        shutil.copytree(package, self.copy, ignore=shutil.ignore_patterns("__pycache__"))
        self.target = self.copy / target.resolve().relative_to(package)
        self.original = self.target.read_text(encoding="utf-8")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.dir / "import"), env.get("PYTHONPATH")) if p
        )
        # cwd is the workspace: the Hypothesis example database stays private to it
        self.worker = subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, str(Path(__file__).resolve()), "--worker", self.package],
            cwd=self.dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def write(self, text: str) -> None:
        self.target.write_text(text, encoding="utf-8")
        # The bytecode cache trusts mtime and size, which a one-token change may keep.
        for cached in self.target.parent.glob(f"__pycache__/{self.target.stem}.*.pyc"):
            cached.unlink()

    def run(self, tests: Sequence[str], timeout: float) -> tuple[str, float]:
        """Run the tests once: (survived | killed | timeout, seconds)."""
        assert self.worker.stdin is not None
        assert self.worker.stdout is not None
        args = ["-x", "-q", "--no-header", "--hypothesis-seed=0", f"--rootdir={REPO}"]
        # -n 0: no pytest-xdist workers (the project's addopts ask for one per core); they
        # would start cold interpreters for every mutant, and the jobs already fill the cores.
        args += ["-c", str(REPO / "pyproject.toml"), "-n", "0", *tests]
        # Plugins preloaded by the warm worker cannot have their asserts rewritten: no matter.
        args += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
        self.worker.stdin.write(json.dumps({"args": args, "timeout": timeout}) + "\n")
        self.worker.stdin.flush()
        reply = self.worker.stdout.readline()
        if not reply:
            raise SystemExit("the pytest worker died")
        answer = json.loads(reply)
        code, elapsed = answer["code"], answer["elapsed"]
        if code is None:
            return "timeout", elapsed
        if code == 0:
            return "survived", elapsed
        # 1: tests failed; 2: collection failed (a mutant broke an import); 4: a conftest
        # failed to import (a mutant broke a module it imports). The unmutated run passed,
        # so neither 2 nor 4 is a mistake on the command line.
        if code in (1, 2, 4):
            return "killed", elapsed
        raise SystemExit(f"pytest exited with {code}; run the tests by hand to see why")

    def close(self) -> None:
        if self.worker.stdin is not None:
            self.worker.stdin.close()
        self.worker.wait(timeout=30)


def _run_child(args: list[str], modules: Path | None) -> NoReturn:
    """In the forked child: run pytest quietly, record the imported modules, leave."""
    import pytest

    os.setpgrp()  # its own process group: a timeout kills whatever the tests started too
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    code = pytest.main(args)
    if modules is not None:
        modules.write_text("\n".join(sorted(sys.modules)), encoding="utf-8")
    os._exit(int(code))


def _wait(pid: int, deadline: float) -> int | None:
    """The child's exit code, or None when it was killed at the deadline."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            for kill in (os.killpg, os.kill):  # the group, and the child if it had none yet
                with contextlib.suppress(ProcessLookupError):
                    kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.01)


def _preload(modules: Path, package: str) -> None:
    """Import what a run imported, except the mutated package and the tests."""
    import importlib

    skip = {package, "tests", "conftest", "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in modules.read_text(encoding="utf-8").split():
            if name.partition(".")[0] not in skip:
                with contextlib.suppress(Exception):
                    importlib.import_module(name)
    for name in [n for n in sys.modules if n.partition(".")[0] in skip - {"__main__"}]:
        del sys.modules[name]  # imported as a side effect: must be imported afresh per mutant


def _worker(package: str) -> None:
    """Serve run requests on stdin: fork, run pytest in the child, report its exit code.

    After the first (cold) run, the modules it imported are imported here, so the children
    forked for the following runs start warm.
    """
    modules: Path | None = Path("modules.txt")
    for line in sys.stdin:
        request = json.loads(line)
        began = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _run_child(request["args"], modules)
        code = _wait(pid, began + request["timeout"])
        elapsed = time.monotonic() - began
        if modules is not None and modules.exists():
            _preload(modules, package)
            modules = None
        print(json.dumps({"code": code, "elapsed": elapsed}), flush=True)


def run(
    target: Path, tests: Sequence[str], mutants: Sequence[Mutant], jobs: int
) -> Iterator[tuple[Mutant, str]]:
    """Yield each mutant with its outcome: killed, survived or timeout."""
    package = _package_root(target)
    resolved_tests = [t if t.startswith("-") else str(Path(t).resolve()) for t in tests]
    with tempfile.TemporaryDirectory(prefix="mutate-") as tmp:
        spaces = [_Workspace(Path(tmp) / f"w{i}", package, target) for i in range(jobs)]
        try:

            def baseline_of(space: _Workspace) -> float:
                for state in ("cold", "warm"):  # the cold run warms the worker up
                    outcome, seconds = space.run(resolved_tests, 600)
                    if outcome != "survived":
                        raise SystemExit(f"the tests fail on the unmutated code ({state} run)")
                return seconds

            with ThreadPoolExecutor(max_workers=jobs) as executor:
                baseline = max(executor.map(baseline_of, spaces))
            print(f"baseline: tests pass in {baseline:.1f} s", file=sys.stderr)
            timeout = 10 * baseline + 10
            pool: queue.Queue[_Workspace] = queue.Queue()
            for space in spaces:
                pool.put(space)

            def one(mutant: Mutant) -> tuple[Mutant, str]:
                space = pool.get()
                try:
                    space.write(mutant.apply(space.original))
                    return mutant, space.run(resolved_tests, timeout)[0]
                finally:
                    space.write(space.original)
                    pool.put(space)

            with ThreadPoolExecutor(max_workers=jobs) as executor:
                yield from executor.map(one, mutants)
        finally:
            for space in spaces:
                space.close()


# -- reporting -----------------------------------------------------------------------------


def _cell(text: str, width: int = 60) -> str:
    text = text.replace("\n", "\\n")
    if len(text) > width:
        text = text[: width - 3] + "..."
    return "`" + text.replace("|", "\\|").replace("`", "'") + "`"


def report(
    results: Sequence[tuple[Mutant, str]], equivalents: Mapping[str, object], source: str
) -> tuple[float, float]:
    """Print the figures and the survivor table; return (raw score, adjusted score) in %."""
    total = len(results)
    killed = sum(outcome != "survived" for _, outcome in results)
    survivors = [m for m, outcome in results if outcome == "survived"]
    known = [m for m in survivors if m.id in equivalents]
    unknown = [m for m in survivors if m.id not in equivalents]
    killed_known = [m for m, outcome in results if outcome != "survived" and m.id in equivalents]
    timeouts = sum(outcome == "timeout" for _, outcome in results)
    raw = 100.0 * killed / total if total else 100.0
    counted = total - len(known)
    adjusted = 100.0 * killed / counted if counted else 100.0
    lines = source.splitlines()
    print()
    if unknown:
        print(f"{len(unknown)} surviving mutant(s) not known to be equivalent:\n")
        print("| id | mutation | source line |")
        print("|---|---|---|")
        for m in unknown:
            change = f"{m.old} -> {m.new}" if m.old else f"insert {m.new}"
            print(f"| {m.id} | {_cell(change)} | {_cell(lines[m.line - 1].strip())} |")
        print()
    for m in killed_known:
        print(f"note: {m.id} is listed as equivalent but was killed; remove it from the list")
    print(
        f"{total} mutants: {killed} killed ({timeouts} by timeout), {len(survivors)} survived "
        f"({len(known)} known equivalent)"
    )
    print(f"score {raw:.1f} % ({killed}/{total}); adjusted {adjusted:.1f} % ({killed}/{counted})")
    return raw, adjusted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, nargs="?", help="the source file to mutate")
    parser.add_argument(
        "--tests", nargs="+", metavar="PATH", help="test files or directories to run per mutant"
    )
    parser.add_argument("--jobs", type=int, default=2, help="mutants run in parallel (default 2)")
    parser.add_argument(
        "--deselect",
        nargs="+",
        default=[],
        metavar="NODEID",
        help="tests to leave out (pytest --deselect), e.g. one that measures time",
    )
    parser.add_argument(
        "--equivalent",
        type=Path,
        default=DEFAULT_EQUIVALENTS,
        metavar="FILE",
        help="known-equivalent mutants, 'id reason' per line (default %(default)s)",
    )
    parser.add_argument("--only", nargs="+", metavar="ID", help="run just these mutant ids")
    parser.add_argument(
        "--scope",
        nargs="+",
        metavar="NAME",
        help="mutate only inside these functions, classes (Class.method for a method) or "
        "module-level assignments",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants, run nothing")
    parser.add_argument(
        "--rekey",
        action="store_true",
        help="update the ids of the file's moved equivalents (matched by their source line)",
    )
    parser.add_argument(
        "--fail-under", type=float, metavar="PCT", help="exit 1 below this adjusted score"
    )
    parser.add_argument("--worker", metavar="PACKAGE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return 0
    if args.file is None:
        parser.error("the file to mutate is required")

    source = args.file.read_text(encoding="utf-8")
    mutants = find_mutants(args.file)
    equivalents, notes = match_equivalents(mutants, load_equivalents(args.equivalent), source)
    for note in notes:
        print(note)
    if args.rekey:
        renames = {entry.id: mutant_id for mutant_id, entry in equivalents.items()}
        rekey(args.equivalent, {old: new for old, new in renames.items() if old != new})
        print(f"{args.equivalent}: ids updated")
        return 0
    if args.scope:
        spans = scopes(args.file)
        unknown = [name for name in args.scope if name not in spans]
        if unknown:
            parser.error(f"--scope: no function, class or assignment named {', '.join(unknown)}")
        mutants = in_scope(mutants, [spans[name] for name in args.scope])
    if args.only:
        mutants = [m for m in mutants if m.id in set(args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.id}\t{m.old!r} -> {m.new!r}")
        print(f"{len(mutants)} mutants", file=sys.stderr)
        return 0
    if not args.tests:
        parser.error("--tests is required unless --list is given")
    print(f"{_display(args.file)}: {len(mutants)} mutants; tests: {' '.join(args.tests)}")
    tests = [*args.tests, *(f"--deselect={node}" for node in args.deselect)]
    results = []
    for n, (mutant, outcome) in enumerate(run(args.file, tests, mutants, max(1, args.jobs)), 1):
        results.append((mutant, outcome))
        print(f"[{n:>3}/{len(mutants)}] {outcome:<8} {mutant.id}", file=sys.stderr)
    _, adjusted = report(results, equivalents, source)
    if args.fail_under is not None and adjusted < args.fail_under:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
