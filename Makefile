# The two commands of the README's quick start:
#   make run    install (pinned, into .venv) and run the whole default workflow
#   make test   install and run every check CI runs (ruff, snakefmt, --lint, unit, workflow, real SLURM)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: install run figures report test unit lint clean
.DEFAULT_GOAL := run

$(BIN)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/snakemake --cores $(CORES)
	$(BIN)/snakemake --report results/report.html

figures: install
	$(BIN)/snakemake --cores $(CORES) figures

report: install
	$(BIN)/snakemake --report results/report.html

lint: install
	$(BIN)/ruff check src tests benchmarks workflow/scripts
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/snakemake --lint

# The unit tests on both cores (pytest-xdist, each file on one worker).
unit: install
	$(BIN)/pytest -q -ra -n $(CORES) --dist loadfile -m "not workflow and not slurm"

# The workflow tests as two pytest sessions at once (tests/run_workflow_tests.sh: the modules that
# share a finished study in one). The real-SLURM tests run last: once Debian's slurm-client is
# installed, every snakemake start asks the controller (via the slurm plugin) and waits ~9 s when
# it is stopped.
test: lint unit
	bash tests/run_workflow_tests.sh $(BIN)
	$(BIN)/pytest -q -ra -m slurm

clean:
	rm -rf results .snakemake
