"""`make mutate`: mutation testing (mutmut) of the modules that guard users.

Each group mutates only its own modules and runs only its own tests (and, of those, mutmut
runs for each mutant just the tests that reach the mutated function), with -x, no xdist,
no backend-bound tests and a time budget. Prints the survivors of each group.

    python tools/mutate.py [GROUP ...] [--budget SECONDS] [--resume] [--survivors] [--only PATTERN ...]

--resume keeps a group's earlier results and runs only the mutants not run yet (mutmut keeps
a result while its function is unchanged, and finds tests added since). --survivors (with
--resume) runs the survivors of the earlier run again, e.g. once new tests are written. --only
(with --resume) runs just the mutants whose names match these patterns (fnmatch, as mutmut
takes them: "kiln.core.audit.x__verify_legacy__mutmut_*"), whatever their earlier result.

A changed test selection (a group's tests, or its pytest options) makes mutmut forget every
result of the group on the next run, --resume or not: it is a fresh run.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutate"
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "names": (["src/kiln/core/names.py"], ["tests/core/test_errors_names_config.py"]),
    "auth": (["src/kiln/core/auth.py", "src/kiln/server/_guard.py", "src/kiln/server/_roles.py"], ["tests/faces/test_roles.py", "tests/faces/test_auth_audit.py", "tests/faces/test_browser_guard.py"]),
    # The contract test of the sha256-to-MAC carry-over (its SQLite case; PostgreSQL is left out with the backends).
    "audit": (["src/kiln/core/audit.py", "src/kiln/core/_audit_anchor.py"], ["tests/core/test_audit.py", "tests/faces/test_auth_audit.py",
              "tests/contract/test_metadata_store.py::test_an_old_sha256_trail_is_carried_over_to_keyed_macs"]),
    "sql": (["src/kiln/lake/sql.py"], ["tests/lake/test_sql.py"]),
    "bundles": (["src/kiln/lake/bundles.py"], ["tests/catalog/test_bundles.py"]),
    "package": (["src/kiln/registry/_package.py"], ["tests/registry/test_package.py", "tests/registry/test_models.py", "tests/registry/test_safety.py", "tests/registry/test_model_code.py"]),
}
# Tests a group leaves out: they reach its modules but test something else, slowly (the
# worker's 20 s time limit ran for every package mutant it reached).
SKIP: dict[str, list[str]] = {
    "package": ["tests/registry/test_model_code.py::test_a_model_that_hangs_or_crashes_cannot_take_the_api_down"],
}


def _results(mutmut: list[str], work: Path) -> list[list[str]]:
    report = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True, check=False)
    return [line.strip().rsplit(": ", 1) for line in report.stdout.splitlines() if ": " in line]


def run_group(name: str, budget: int, *, resume: bool = False, survivors: bool = False, only: list[str] | None = None, jobs: int = 2) -> None:
    modules, tests = GROUPS[name]
    work = WORK / name  # `mutmut show NAME` there shows a mutant's diff
    mutmut = [str(Path(sys.executable).with_name("mutmut"))]  # not `python -m`: the trampolines import mutmut.__main__
    again = [m for m, status in _results(mutmut, work) if status == "survived"] if resume and survivors and work.exists() else []
    if not (resume and work.exists()):
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for entry in ("src", "tests", "pyproject.toml"):
            (work / entry).symlink_to(ROOT / entry)
    cfg: dict[str, list[str] | str] = {
        "source_paths": ["src"],  # copied whole, so kiln imports from the copy; only `modules` mutate
        "only_mutate": modules,
        "pytest_add_cli_args": ["-x", "-n", "0", "-p", "no:cacheprovider", "-m", "not postgres and not s3 and not nats",
                                *(f"--deselect={test}" for test in SKIP.get(name, []))],
        "pytest_add_cli_args_test_selection": tests,
        # Fork each mutant's worker from a server that only collected the tests: forked from
        # the process that ran them, DuckDB's threads made most SQL mutants crash ("segfault").
        "process_isolation": "forkserver",
    }
    (work / "setup.cfg").write_text("[mutmut]\n" + "".join(
        f"{key}={values}\n" if isinstance(values, str) else f"{key}=\n" + "".join(f"    {v}\n" for v in values)
        for key, values in cfg.items()))
    print(f"== {name}: {', '.join(modules)} against {', '.join(tests)} ({budget}s)", flush=True)
    deadline = time.monotonic() + budget
    try:
        with open(work / "run.log", "w") as log:  # mutmut's progress spinner, kept out of the terminal
            # The mutants not run yet (all of them on a fresh run), then the earlier survivors again.
            for names in [only] if only and resume and work.exists() else ([], again) if again else ([],):
                subprocess.run([*mutmut, "run", "--max-children", str(jobs), *names], cwd=work, timeout=max(1.0, deadline - time.monotonic()), check=False, stdout=log, stderr=subprocess.STDOUT)
    except subprocess.TimeoutExpired:
        print(f"   budget of {budget}s spent: the mutants not run are counted as 'not checked'", flush=True)
    results = _results(mutmut, work)
    counts = Counter(status for _, status in results)
    print("   " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + f" of {len(results)} mutants", flush=True)
    for mutant, status in results:
        if status not in ("killed", "not checked"):
            print(f"   {status}: {mutant}  (cd {work.relative_to(ROOT)} && mutmut show {mutant})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", help=f"any of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--budget", type=int, default=600, help="seconds per group")
    parser.add_argument("--resume", action="store_true", help="keep earlier results; run what was not run")
    parser.add_argument("--survivors", action="store_true", help="with --resume: run the earlier survivors again")
    parser.add_argument("--only", nargs="+", metavar="PATTERN", help="with --resume: run just the mutants matching these names or patterns")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2: the machine is shared)")
    args = parser.parse_args()
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}; choose from {', '.join(GROUPS)}")
    for name in args.groups or GROUPS:
        run_group(name, args.budget, resume=args.resume, survivors=args.survivors, only=args.only, jobs=args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
