# Everything a fresh Debian 12 machine needs, installed by the targets themselves (as root).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PGHA := $(VENV)/bin/pgha
APT_PACKAGES := postgresql-15 postgresql-client-15 haproxy pgbouncer zookeeper etcd-server etcd-client \
	default-jre-headless python3-venv pgbackrest iproute2 procps nftables util-linux docker-compose \
	prometheus
# Unit tests run on every core (they are CPU-bound: the CLI started hundreds of times). The
# integration tests run two test files at a time (a drill leaves the machine ~70% idle while it
# waits for timers): every file has cluster names and ports of its own, and each worker its own
# PGHA_HOME; module-scoped clusters stay with their file (--dist loadfile).
PYTEST_ARGS ?=

.PHONY: setup system venv demo test test-containers containers lint imports soak bench clean

setup: system venv

system:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: $(VENV)/.installed

# The venv comes from the system Python, so the unprivileged service user can execute it.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(PGHA) up
	$(PGHA) check
	$(PGHA) status
	$(PGHA) connect

test: setup
	$(PY) -m pytest tests/unit -n auto $(PYTEST_ARGS)
	$(PY) -m pytest tests/integration -n 2 --dist loadfile $(PYTEST_ARGS)

# The compose deployment on rootful Podman: engine + base image (idempotent), then the default
# deployment up via `pgha up --backend compose`, pgha check, a stop and a kill drill, teardown.
containers: venv
	bash scripts/container-engine.sh $(VENV)

test-containers: setup containers
	$(PY) -m pytest tests/containers $(PYTEST_ARGS)

# A long soak on its own cluster: random faults under one continuous load, one verdict.
SOAK ?= 10m
SOAK_FAULTS ?= stop,kill,freeze,crash-postgres,node-loss
# Then the same on hosts of their own (netns), with network partitions among the faults.
SOAK_NETNS_FAULTS ?= isolate,isolate-dcs,partition,loss,stop,kill,freeze
soak: setup
	$(PGHA) up --name soak --base-port 26432
	$(PGHA) drill --name soak --soak $(SOAK) --faults $(SOAK_FAULTS); rc=$$?; \
	$(PGHA) down --name soak --purge; test $$rc -eq 0 || exit $$rc
	$(PGHA) up --name soak-netns --backend netns --base-port 26532
	$(PGHA) drill --name soak-netns --soak $(SOAK) --faults $(SOAK_NETNS_FAULTS); rc=$$?; \
	$(PGHA) down --name soak-netns --purge; exit $$rc

bench: setup
	$(PY) bench/up.py
	$(PY) bench/entrypoint.py
	$(PY) bench/failover.py
	$(PY) bench/seconds.py

lint: imports
	$(VENV)/bin/ruff check pgha tests bench
	$(VENV)/bin/mypy

# The import contracts in pyproject.toml: every package imports only from the layers below it.
imports: setup
	$(VENV)/bin/lint-imports

clean:
	-$(PGHA) down --purge
	rm -rf $(VENV)
