# Two commands matter: `make demo` and `make test`. Each builds .venv from the
# pinned constraints on first use, with nothing but Python on the machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
UV     := $(BIN)/uv

.PHONY: demo test install bench mutate lint clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e ".[dev]"
	@# Bytecode ahead, as a user's pip install does: without .pyc files (and with
	@# PYTHONDONTWRITEBYTECODE=1 they are never written) every `kiln` run recompiles all
	@# it imports, seconds per command. uv 0.13.9's flag left site-packages uncompiled here,
	@# and it never compiles an editable install's own source: compile both (errors in vendored
	@# test files that are never imported are ignored).
	$(BIN)/python -c "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_path('purelib'), quiet=2, workers=0)"
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@rm -rf .kiln-demo
	KILN_HOME=.kiln-demo $(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Mutation testing of the modules that guard users (names, auth, audit, SQL sandbox, bundles,
# package hashes): each group mutates its own modules and runs its own tests, under a budget.
# MUTATE_ARGS="--resume" keeps earlier results; "--resume --survivors" reruns the survivors.
GROUPS ?=
BUDGET ?= 600
MUTATE_ARGS ?=
mutate: $(STAMP)
	$(UV) pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[mutate]"
	$(BIN)/python tools/mutate.py $(GROUPS) --budget $(BUDGET) $(MUTATE_ARGS)

# Benchmarks compare Kiln with the tools users would otherwise pick. Those tools are
# installed in venvs of their own (.venv-bench, .venv-ydata, .venv-evidently, .venv-feast...), never as Kiln dependencies.
bench:
	@test -x .venv-bench/bin/python || $(PYTHON) -m venv .venv-bench
	@.venv-bench/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	.venv-bench/bin/uv pip install --quiet --compile-bytecode --python .venv-bench/bin/python -e ".[bench]"
	.venv-bench/bin/python -c "import compileall, sysconfig; compileall.compile_dir(sysconfig.get_path('purelib'), quiet=2, workers=0)"
	.venv-bench/bin/python -m compileall -q src
	@test -x .venv-ydata/bin/python || $(PYTHON) -m venv .venv-ydata
	.venv-bench/bin/uv pip install --quiet --python .venv-ydata/bin/python "ydata-profiling>=4.9" pyarrow psutil
	@test -x .venv-flaml/bin/python || $(PYTHON) -m venv .venv-flaml
	.venv-bench/bin/uv pip install --quiet --python .venv-flaml/bin/python "flaml==2.7.0" "lightgbm==4.7.0" "xgboost-cpu==3.2.0" "scikit-learn==1.9.1" pandas pyarrow
	@# AutoGluon is optional: benchmarks/automl.py reports it missing when it does not install.
	-@test -x .venv-ag/bin/python || $(PYTHON) -m venv .venv-ag
	-.venv-bench/bin/uv pip install --quiet --python .venv-ag/bin/python "autogluon.tabular[lightgbm,xgboost]==1.6.3" pyarrow
	.venv-bench/bin/python benchmarks/cli.py
	.venv-bench/bin/python benchmarks/ingest.py
	.venv-bench/bin/python benchmarks/sql.py
	.venv-bench/bin/python benchmarks/streams.py
	.venv-bench/bin/python benchmarks/tracking.py
	.venv-bench/bin/python benchmarks/recipes.py
	.venv-bench/bin/python benchmarks/jobs.py
	.venv-bench/bin/python benchmarks/serving.py
	PYTHONPATH=. .venv-bench/bin/python benchmarks/batch.py
	.venv-bench/bin/python benchmarks/profile.py --peer-python .venv-ydata/bin/python --procs 3 --repeat 2
	@# Evidently 0.7.23 fails to import with pandas 3 (Kiln's pin): a venv of its own too.
	@test -x .venv-evidently/bin/python || $(PYTHON) -m venv .venv-evidently
	.venv-bench/bin/uv pip install --quiet --python .venv-evidently/bin/python "evidently==0.7.23" "pandas<3" pyarrow psutil
	.venv-bench/bin/python benchmarks/drift.py --peer-python .venv-evidently/bin/python
	.venv-bench/bin/python benchmarks/automl.py
	@test -x .venv-feast/bin/python || $(PYTHON) -m venv .venv-feast
	.venv-bench/bin/uv pip install --quiet --python .venv-feast/bin/python "feast==0.67.0" psutil
	PYTHONPATH=. .venv-bench/bin/python benchmarks/features.py --feast-python .venv-feast/bin/python
	PYTHONPATH=. .venv-bench/bin/python benchmarks/metrics.py
	PYTHONPATH=. .venv-bench/bin/python benchmarks/tuning.py

clean:
	rm -rf $(VENV) .venv-bench .venv-ydata .venv-evidently .venv-feast .kiln .kiln-demo .pytest_cache .mutate
