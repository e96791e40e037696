"""`make mutate`: mutation testing (mutmut) of the modules that guard users.

Each group mutates only its own modules and runs only its own tests (and, of those, mutmut
runs for each mutant just the tests that reach the mutated function), with -x, no xdist,
no backend-bound tests and a time budget. Prints the survivors of each group.

    python tools/mutate.py [GROUP ...] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutate"
GROUPS: dict[str, tuple[list[str], list[str]]] = {
    "names": (["src/kiln/core/names.py"], ["tests/core/test_errors_names_config.py"]),
    "auth": (["src/kiln/core/auth.py", "src/kiln/server/_guard.py", "src/kiln/server/_roles.py"], ["tests/faces/test_roles.py", "tests/faces/test_auth_audit.py", "tests/faces/test_browser_guard.py"]),
    "audit": (["src/kiln/core/audit.py", "src/kiln/core/_audit_anchor.py"], ["tests/core/test_audit.py", "tests/faces/test_auth_audit.py"]),
    "sql": (["src/kiln/lake/sql.py"], ["tests/lake/test_sql.py"]),
    "bundles": (["src/kiln/lake/bundles.py"], ["tests/catalog/test_bundles.py"]),
    "package": (["src/kiln/registry/_package.py"], ["tests/registry/test_safety.py", "tests/registry/test_model_code.py"]),
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
    env = dict(os.environ)
    mutmut = [str(Path(sys.executable).with_name("mutmut"))]  # not `python -m`: the trampolines import mutmut.__main__
    print(f"== {name}: {', '.join(modules)} against {', '.join(tests)} ({budget}s)", flush=True)
    try:
        subprocess.run([*mutmut, "run", "--max-children", "2"], cwd=work, env=env, timeout=budget, check=False)
    except subprocess.TimeoutExpired:
        print(f"   budget of {budget}s spent: the mutants not run are listed as such", flush=True)
    report = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True, check=False)
    print(report.stdout, report.stderr, sep="", flush=True)


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
