"""`make mutate`: mutation testing (mutmut) of the modules that guard users.

Each group mutates only its own modules and runs only its own tests (and, of those, mutmut
runs for each mutant just the tests that reach the mutated function), with -x, no xdist,
no backend-bound tests and a time budget. Prints the survivors of each group.

    python tools/mutate.py [GROUP ...] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutate"
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "names": (["src/kiln/core/names.py"], ["tests/core/test_errors_names_config.py"]),
    "auth": (["src/kiln/core/auth.py", "src/kiln/server/_guard.py", "src/kiln/server/_roles.py"], ["tests/faces/test_roles.py", "tests/faces/test_auth_audit.py", "tests/faces/test_browser_guard.py"]),
    "audit": (["src/kiln/core/audit.py", "src/kiln/core/_audit_anchor.py"], ["tests/core/test_audit.py", "tests/faces/test_auth_audit.py"]),
    "sql": (["src/kiln/lake/sql.py"], ["tests/lake/test_sql.py"]),
    "bundles": (["src/kiln/lake/bundles.py"], ["tests/catalog/test_bundles.py"]),
    "package": (["src/kiln/registry/_package.py"], ["tests/registry/test_models.py", "tests/registry/test_safety.py", "tests/registry/test_model_code.py"]),
}


def run_group(name: str, budget: int) -> None:
    modules, tests = GROUPS[name]
    work = WORK / name  # `mutmut show NAME` there shows a mutant's diff
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for entry in ("src", "tests", "pyproject.toml"):
        (work / entry).symlink_to(ROOT / entry)
    cfg = {
        "source_paths": ["src"],  # copied whole, so kiln imports from the copy; only `modules` mutate
        "only_mutate": modules,
        "pytest_add_cli_args": ["-x", "-n", "0", "-p", "no:cacheprovider", "-m", "not postgres and not s3 and not nats"],
        "pytest_add_cli_args_test_selection": tests,
    }
    (work / "setup.cfg").write_text("[mutmut]\n" + "".join(f"{key}=\n" + "".join(f"    {v}\n" for v in values) for key, values in cfg.items()))
    mutmut = [str(Path(sys.executable).with_name("mutmut"))]  # not `python -m`: the trampolines import mutmut.__main__
    print(f"== {name}: {', '.join(modules)} against {', '.join(tests)} ({budget}s)", flush=True)
    try:
        with open(work / "run.log", "w") as log:  # mutmut's progress spinner, kept out of the terminal
            subprocess.run([*mutmut, "run", "--max-children", "2"], cwd=work, timeout=budget, check=False, stdout=log, stderr=subprocess.STDOUT)
    except subprocess.TimeoutExpired:
        print(f"   budget of {budget}s spent: the mutants not run are counted as 'not checked'", flush=True)
    report = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True, check=False)
    results = [line.strip().rsplit(": ", 1) for line in report.stdout.splitlines() if ": " in line]
    counts = Counter(status for _, status in results)
    print("   " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) + f" of {len(results)} mutants", flush=True)
    for mutant, status in results:
        if status not in ("killed", "not checked"):
            print(f"   {status}: {mutant}  (cd {work.relative_to(ROOT)} && mutmut show {mutant})", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="*", help=f"any of {', '.join(GROUPS)} (default: all)")
    parser.add_argument("--budget", type=int, default=600, help="seconds per group")
    args = parser.parse_args()
    unknown = sorted(set(args.groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}; choose from {', '.join(GROUPS)}")
    for name in args.groups or GROUPS:
        run_group(name, args.budget)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
