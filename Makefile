# Two commands matter: `make demo` and `make test`. Each builds .venv from the
# pinned constraints on first use, with nothing but Python on the machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev
UV     := $(BIN)/uv

.PHONY: demo test install bench lint clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(UV) pip install --quiet --python $(BIN)/python -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	@rm -rf .kiln-demo
	KILN_HOME=.kiln-demo $(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

# Benchmarks compare Kiln with the tools users would otherwise pick; those tools
# are installed here only, never as Kiln dependencies.
bench: $(STAMP)
	$(UV) pip install --quiet --python $(BIN)/python -c constraints-bench.txt -e ".[bench]"
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/sql.py

clean:
	rm -rf $(VENV) .kiln .kiln-demo .pytest_cache
