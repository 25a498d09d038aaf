"""``make mutate``: cosmic-ray over the security-critical modules, with a kill-rate table.

Mutants are made in a copy of the package laid out as the wheel installs it
(``build/mutate/tree/keyledger``), never in the working tree: the tests import that
copy through ``PYTHONPATH``, which Python searches before the editable install's
finder. So an interrupted run leaves nothing to restore, and each run starts from a
fresh copy and fresh sessions (idempotent).

Each target runs its own focused test command (the unit and integration tests that
exercise it, ``-x`` so a killed mutant stops at its first failure), with a timeout
per mutant of a few times the unmutated run. Mutants inside annotations are skipped:
with ``from __future__ import annotations`` they are never evaluated (an equivalent
mutant by construction). cosmic-ray has no operator for string literals, so
docstrings and log messages are never mutated.

    python -m tests.mutation.run [--only NAME ...] [--report-only]
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.layout import FOLDERS, ROOT

BUILD = ROOT / "build" / "mutate"

#: Operators left out, as regular expressions (cosmic-ray's operators-filter): turning
#: arithmetic into bit operations or back, and ``==``/``<`` into ``is`` (or ``is`` into
#: ``<``), make mutants that the arithmetic and comparison swaps already stand for, at
#: about a third of the run time (docs/mutation.md).
EXCLUDED_OPERATORS = (
    r"core/ReplaceBinaryOperator_\w+_(Pow|RShift|LShift|BitOr|BitAnd|BitXor)$",
    r"core/ReplaceBinaryOperator_(Pow|RShift|LShift|BitOr|BitAnd|BitXor)_\w+$",
    r"core/ReplaceComparisonOperator_(Eq|NotEq|Lt|LtE|Gt|GtE)_(Is|IsNot)$",
    r"core/ReplaceComparisonOperator_(Is|IsNot)_(Lt|LtE|Gt|GtE)$",
)

PYTEST = "-m pytest -x -q -p no:cacheprovider"

POLICY_UNIT = (
    "tests/unit/test_policies.py tests/unit/test_role_permits.py "
    "tests/unit/test_lifecycle_policies.py tests/unit/test_policy_engine.py "
    "tests/unit/test_policy_edges.py"
)


@dataclass(frozen=True)
class Target:
    name: str
    sources: tuple[str, ...]  # paths in the working tree
    tests: str  # pytest arguments: the tests that exercise the sources, fastest first


#: Longest first, so that targets run side by side finish together.
TARGETS = (
    Target(
        "policies",
        tuple(
            str(p.relative_to(ROOT))
            for p in sorted((ROOT / "policies").glob("*.py"))
            if p.name != "__init__.py"
        ),
        f"{POLICY_UNIT} tests/integration/test_forward_paths.py",
    ),
    Target(
        "throttle",
        ("app/authn/throttle.py",),
        "tests/unit/test_throttle.py tests/unit/test_throttle_edges.py "
        "tests/integration/test_hash_floods.py tests/integration/test_abuse.py "
        "tests/integration/test_source_address.py",
    ),
    Target(
        "authenticator",
        ("app/authn/authenticator.py",),
        "tests/unit/test_authenticator.py tests/integration/test_abuse.py "
        "tests/integration/test_hash_floods.py",
    ),
    Target(
        "hashing",
        ("app/authn/hashing.py",),
        "tests/unit/test_hashing.py tests/unit/test_hash_memory.py tests/integration/test_abuse.py",
    ),
    Target(
        "github",
        ("app/authn/github.py",),
        "tests/unit/test_github_signatures.py tests/integration/scanning/test_secret_scanning.py",
    ),
    Target(
        "forward",
        ("app/web/forward.py",),
        "tests/unit/test_forward_paths.py tests/integration/test_forward_fast_path.py "
        "tests/integration/test_forward_paths.py",
    ),
)


def tree(target: Target) -> Path:
    """Where the target's own copy of the package sits (one per target: run side by side)."""
    return BUILD / target.name / "tree"


def package_dir(target: Target, folder: str) -> Path:
    """Where a source folder sits in the target's copy (pyproject package-dir)."""
    return tree(target).joinpath(*FOLDERS[folder].split("."))


def copied(target: Target, source: str) -> Path:
    folder, _, rest = source.partition("/")
    return package_dir(target, folder) / rest


def lay_out_tree(target: Target) -> None:
    """A fresh copy of the package as the wheel installs it (real files: mutated in place)."""
    shutil.rmtree(tree(target), ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in FOLDERS:
        shutil.copytree(
            ROOT / folder, package_dir(target, folder), ignore=ignore, dirs_exist_ok=True
        )


def environment(target: Target) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree(target)), env.get("PYTHONPATH")]))
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_command(target: Target) -> str:
    existing = [arg for arg in target.tests.split() if (ROOT / arg).exists()]
    return f"{sys.executable} {PYTEST} {' '.join(existing)}"


def annotation_lines(path: Path) -> set[tuple[int, int, int, int]]:
    """The (start line, start col, end line, end col) of every annotation in a module."""
    spans = set()
    for node in ast.walk(ast.parse(path.read_text())):
        annotations: list[ast.expr | None] = []
        if isinstance(node, ast.arg):
            annotations.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            annotations.append(node.annotation)
        for annotation in annotations:
            if annotation is not None:
                spans.add(
                    (
                        annotation.lineno,
                        annotation.col_offset,
                        annotation.end_lineno or annotation.lineno,
                        annotation.end_col_offset or 0,
                    )
                )
    return spans


def inside(position: tuple[int, int], span: tuple[int, int, int, int]) -> bool:
    return (span[0], span[1]) <= position <= (span[2], span[3])


def skip_annotations(session: Path) -> int:
    """Mark mutants inside annotations as skipped (never evaluated: equivalent)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    skipped = 0
    spans: dict[str, set[tuple[int, int, int, int]]] = {}
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item in list(db.pending_work_items):
            for mutation in item.mutations:
                path = str(mutation.module_path)
                if path not in spans:
                    spans[path] = annotation_lines(Path(path))
                start = tuple(mutation.start_pos)
                if any(inside(start, span) for span in spans[path]):  # type: ignore[arg-type]
                    db.set_result(
                        item.job_id,
                        WorkResult(
                            output="inside an annotation (never evaluated)",
                            worker_outcome=WorkerOutcome.SKIPPED,
                        ),
                    )
                    skipped += 1
                    break
    return skipped


def run_target(target: Target, survivors_only: bool) -> str:
    """Run the target's mutants (or, with ``survivors_only``, again the last run's
    survivors), logging to build/mutate/<name>.log; returns a one-line summary."""
    session = BUILD / f"{target.name}.sqlite"
    config = BUILD / f"{target.name}.toml"
    log = (BUILD / f"{target.name}.log").open("w")
    lay_out_tree(target)
    env = environment(target)
    command = test_command(target)
    started = time.monotonic()
    baseline = subprocess.run(
        command.split(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    took = time.monotonic() - started
    if baseline.returncode != 0:
        raise SystemExit(f"{target.name}: the tests fail without any mutant (see {log.name})")
    timeout = max(30.0, 3 * took)
    modules = ", ".join(f'"{copied(target, source)}"' for source in target.sources)
    excluded = ", ".join(f"'{operator}'" for operator in EXCLUDED_OPERATORS)
    config.write_text(
        "[cosmic-ray]\n"
        f"module-path = [{modules}]\n"
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f'test-command = "{command}"\n\n'
        '[cosmic-ray.distributor]\nname = "local"\n\n'
        "[cosmic-ray.filters.operators-filter]\n"
        f"exclude-operators = [{excluded}]\n"
    )
    binaries = Path(sys.executable).parent
    if survivors_only and session.exists():
        shutil.copyfile(session, BUILD / f"{target.name}.previous.sqlite")
        again = forget_survivors(session)
        note = f"{again} survivors of the last run again"
    else:
        session.unlink(missing_ok=True)
        for step in (
            [binaries / "cosmic-ray", "init", config, session],
            [binaries / "cr-filter-operators", session, config],
        ):
            subprocess.run(step, cwd=ROOT, env=env, check=True, stdout=log, stderr=log)
        note = f"{skip_annotations(session)} mutants in annotations skipped"
    started = time.monotonic()
    subprocess.run(
        [binaries / "cosmic-ray", "exec", config, session],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=log,
        stderr=log,
    )
    return (
        f"{target.name}: tests {took:.0f} s unmutated, timeout {timeout:.0f} s per mutant, "
        f"{note}; {time.monotonic() - started:.0f} s"
    )


def forget_survivors(session: Path) -> int:
    """Drop the results of surviving mutants so that ``cosmic-ray exec`` runs them again."""
    with sqlite3.connect(session) as db:
        return db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount


def report(targets: tuple[Target, ...], suffix: str = "") -> int:
    """Per-file and total kill rates, and every survivor's change (build/mutate/survivors.txt);
    with ``suffix`` ".previous", those of the sessions before the last ``--survivors``."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    rows: dict[str, Counter[str]] = {}
    survivors: list[str] = []
    for target in targets:
        session = BUILD / f"{target.name}{suffix}.sqlite"
        if not session.exists():
            continue
        with use_db(str(session), WorkDB.Mode.open) as db:
            for item, result in db.completed_work_items:
                path = str(Path(item.mutations[0].module_path).relative_to(tree(target)))
                counts = rows.setdefault(path, Counter())
                if result.worker_outcome == WorkerOutcome.SKIPPED:
                    counts["skipped"] += 1
                elif result.test_outcome == TestOutcome.SURVIVED:
                    counts["survived"] += 1
                    mutation = item.mutations[0]
                    changed = [
                        line
                        for line in (result.diff or "").splitlines()
                        if line[:1] in "-+" and line[:3] not in ("---", "+++")
                    ]
                    survivors.append(
                        f"{path}:{mutation.start_pos[0]} {mutation.operator_name}\n"
                        + "\n".join(changed)
                        + "\n"
                    )
                elif result.test_outcome == TestOutcome.INCOMPETENT:
                    counts["incompetent"] += 1
                else:
                    counts["killed"] += 1
            for item in db.pending_work_items:
                path = str(Path(item.mutations[0].module_path).relative_to(tree(target)))
                rows.setdefault(path, Counter())["pending"] += 1
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / f"survivors{suffix}.txt").write_text("\n".join(survivors))
    header = (
        f"{'file':<48} {'mutants':>7} {'killed':>6} {'survived':>8} {'skipped':>7} {'kill rate':>9}"
    )
    print(header)
    print("-" * len(header))
    total: Counter[str] = Counter()
    for path in sorted(rows):
        counts = rows[path]
        total.update(counts)
        print(line(path, counts))
    print("-" * len(header))
    print(line("total", total))
    if total["pending"]:
        print(f"{total['pending']} mutants not run yet")
    print(f"survivors' changes: {(BUILD / f'survivors{suffix}.txt').relative_to(ROOT)}")
    return 0


def line(name: str, counts: Counter[str]) -> str:
    # Incompetent mutants (the module cannot even be imported) count as killed.
    killed = counts["killed"] + counts["incompetent"]
    tested = killed + counts["survived"]
    rate = f"{100 * killed / tested:.1f}%" if tested else "-"
    mutants = tested + counts["skipped"]
    return (
        f"{name:<48} {mutants:>7} {killed:>6} {counts['survived']:>8} "
        f"{counts['skipped']:>7} {rate:>9}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", nargs="*", help="target names (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="targets run side by side")
    parser.add_argument(
        "--survivors", action="store_true", help="run only the last run's survivors again"
    )
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument(
        "--previous",
        action="store_true",
        help="with --report-only: the table from before the last --survivors run",
    )
    args = parser.parse_args(argv)
    targets = tuple(t for t in TARGETS if not args.only or t.name in args.only)
    if not args.report_only:
        BUILD.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            runs = [pool.submit(run_target, target, args.survivors) for target in targets]
            for run in runs:
                print(run.result(), flush=True)
        print(f"mutation run: {time.monotonic() - started:.0f} s wall time")
    return report(targets, ".previous" if args.previous else "")


if __name__ == "__main__":
    sys.exit(main())
