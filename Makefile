# The README's commands. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra
LAB_INVENTORY := .lab/inventory.py

.PHONY: demo test check unit lint bench lab-up lab-down lab-build docker venv tools
# Test workers, each with a lab of its own side by side (lab/config.py NAMESPACE): a lab test mostly
# waits (for SSH, apt, a ban), so more workers than cores still shortens the run
WORKERS ?= 3

venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV) || { rm -rf $(VENV); [ "$$(id -u)" = 0 ] && apt-get install -y -q python3-venv && python3 -m venv $(VENV); }
	$(VENV)/bin/pip install -q -r requirements.txt
	touch $@

docker:
	bash scripts/ensure-docker.sh

tools:
	@bash scripts/ensure-fail2ban-regex.sh >/dev/null

lab-build: venv docker
	$(PY) -m lab build

lab-up: venv docker           ## NODES=10 or VARIANTS=pve8,pve9 to choose
	$(PY) -m lab up $(if $(NODES),--nodes $(NODES)) $(if $(VARIANTS),--variants $(VARIANTS))

lab-down: venv
	$(PY) -m lab down

demo: venv docker lab-up
	$(PYINFRA) -y $(LAB_INVENTORY) deploy.py
	$(PY) scripts/demo.py

lint: venv                   ## ruff: format and lint (pyproject.toml)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

unit: venv tools
	$(PY) -m pytest tests/unit

test: venv docker tools     ## the whole suite; the lab's images are built first, once
	$(PY) -m lab build
	$(PY) -m pytest -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

check: lint tools docker   ## the fast loop: lint, the unit tests, a lab slice (one converge, a ban, a day-2 op)
	$(PY) -m lab build
	$(PY) -m pytest -n 2 --dist loadfile -m "not lab or slice"

bench: venv docker tools       ## writes bench/results/latest.json
	$(PY) bench/run.py
