# The README's commands. `make demo` and `make test` set up everything they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYINFRA := $(VENV)/bin/pyinfra
LAB_INVENTORY := .lab/inventory.py

.PHONY: demo test unit lint bench lab-up lab-down lab-build docker venv tools

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

test: venv docker tools
	$(PY) -m pytest

bench: venv docker tools       ## writes bench/results/latest.json
	$(PY) bench/run.py
