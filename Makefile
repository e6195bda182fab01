# Two commands on a fresh machine:
#   make rollout   venv + local dev Postgres + the dev rollout, verified
#   make test      linters + the whole test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(abspath ansible.cfg)

.PHONY: help rollout dry-run test lint sanity molecule venv docs collection ee-context db-start db-stop db-reset db-status db-prepare bench-lock-safety bench-backup-restore bench-many-migrations bench-peers bench-big-file bench-catalog bench-fleet status new-migration spec lint-migrations

# make help: every target with one line (the text after "##" on its rule)
help:  ## list the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## / {printf "  %-22s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "pgrollout needs Python >= 3.11 (ansible-core 2.19): set PYTHON=")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

venv: $(VENV)/.installed  ## the virtualenv with pgrollout's Python requirements (.venv)

# PGROLLOUT_EXTENSION_STUBS=pg_net,http make db-start: the dev server also offers pgrollout's
# extension stubs (supabase/stubs: they send nothing; README, A Supabase-shaped local stack).
db-start: venv  ## start the local dev PostgreSQL (first time: compatibility layer, 001-002, seed)
	$(BIN)/python scripts/localpg.py start

db-stop: venv  ## stop the local dev PostgreSQL
	$(BIN)/python scripts/localpg.py stop

db-reset: venv  ## a fresh dev cluster at the 001+002 baseline with seed rows
	$(BIN)/python scripts/localpg.py reset

db-status: venv  ## whether the dev database runs, and where
	$(BIN)/python scripts/localpg.py status

# The Supabase compatibility layer on a plain PostgreSQL target of an inventory
# (a staging server of your own, a CI database): make db-prepare ENV=staging.
# Refused in prod and on a real Supabase project. Dev gets it from db-start.
ENV ?= dev
db-prepare: $(if $(filter dev,$(ENV)),db-start,venv)  ## the Supabase compatibility layer on a plain target: make db-prepare ENV=staging
	$(BIN)/ansible-playbook prepare.yml -i inventories/$(ENV) $(ARGS)

rollout: db-start  ## roll the pending migrations out to dev, verified (one of the two commands)
	$(BIN)/ansible-playbook rollout.yml -i inventories/dev

dry-run: db-start  ## the dev rollout with --check --diff: every pending file run and rolled back
	$(BIN)/ansible-playbook rollout.yml -i inventories/dev --check --diff

lint: venv  ## ruff, yamllint and ansible-lint (production profile, offline)
	$(BIN)/ruff check .
	$(BIN)/yamllint --strict .
	$(BIN)/ansible-lint --offline

test: lint  ## lint, the whole test suite, the collection's checks and Molecule (what CI runs; one of the two commands)
	$(BIN)/pytest -n auto
	$(MAKE) --no-print-directory sanity
	$(MAKE) --no-print-directory molecule

# The built collection as Galaxy and Automation Hub check it: ansible-test sanity and units,
# ansible-lint production, on the installed tarball, and galaxy-importer (scripts/check_collection.py).
sanity: venv  ## the built collection: ansible-test sanity and units, ansible-lint (production), galaxy-importer
	$(BIN)/python scripts/check_collection.py

# Molecule scenarios against Postgres containers: with the first working engine
# (or PGROLLOUT_CONTAINER_ENGINE). Without one they are skipped, saying so,
# unless PGROLLOUT_REQUIRE_MOLECULE is set (CI).
molecule: venv  ## the Molecule scenarios against Postgres containers (podman or docker)
	@engine=$${PGROLLOUT_CONTAINER_ENGINE:-$$(for e in podman docker; do \
	  $$e info >/dev/null 2>&1 && { echo $$e; break; }; done)}; \
	if [ -n "$$engine" ]; then PGROLLOUT_CONTAINER_ENGINE=$$engine $(BIN)/molecule test --all; \
	elif [ -n "$$PGROLLOUT_REQUIRE_MOLECULE" ]; then \
	  echo "molecule: no working container engine (podman or docker)" >&2; exit 1; \
	else echo "molecule: SKIPPED, no working container engine (README, Molecule)"; fi

bench-lock-safety: venv  ## benchmark: lock waits a migration causes live traffic
	$(BIN)/python bench/lock_safety.py

bench-backup-restore: venv  ## benchmark: backup and restore against pg_dump/pg_restore
	$(BIN)/python bench/backup_restore.py

bench-fleet: venv  ## benchmark: many targets, CPU per extra target
	$(BIN)/python bench/fleet.py

bench-many-migrations: venv  ## benchmark: 150 files, CPU beside psql, the Supabase CLI and dbmate
	$(BIN)/python bench/many_migrations.py

# The peers bench-many-migrations measures beside pgrollout: the Supabase CLI and dbmate (npm registry).
bench-peers:  ## install the Supabase CLI and dbmate for bench-many-migrations (npm)
	npm install --prefix .local/node --no-audit --no-fund --silent supabase@3.1.0 dbmate@2.36.0

bench-big-file: venv  ## benchmark: the preflight of a 50 MB migration
	$(BIN)/python bench/big_file_preflight.py

bench-catalog: venv  ## benchmark: the catalog snapshot of 1,000 tables
	$(BIN)/python bench/catalog_snapshot.py

# Every environment's status side by side (an environment that cannot be
# reached, has no target, or whose vault cannot be decrypted says so and the
# others are still shown). The vault password as ansible-playbook takes it:
# ANSIBLE_VAULT_PASSWORD_FILE, or ARGS='--vault-password-file F'.
status: venv  ## every environment's status side by side
	@$(BIN)/python scripts/status_all.py $(ARGS)

# The next migration: forward file, rollback file and spec skeletons (configured layout).
new-migration: venv  ## a new migration, its rollback and its spec: make new-migration NAME=...
	@test -n "$(NAME)" || { echo "usage: make new-migration NAME=add_bot_notes" >&2; exit 2; }
	$(BIN)/python scripts/new_migration.py "$(NAME)"

# Its specs, from a rolled-back dry run on the dev database.
spec: db-start  ## a migration's spec from a rolled-back dry run on dev: make spec VERSION=004
	@test -n "$(VERSION)" || { echo "usage: make spec VERSION=004 [FORCE=1]" >&2; exit 2; }
	$(BIN)/ansible-playbook spec.yml -i inventories/dev -e pgrollout_spec_version=$(VERSION) \
	  -e pgrollout_spec_force=$(if $(FORCE),true,false)

# The migration review: the files pending on dev (every file when it is not running, or
# ARGS='-e pgrollout_lint_all=true'; a pull request pipeline needs no database): .ops/lint/lint.json, junit.xml.
lint-migrations: venv  ## the migration review (squawk and pgrollout's rules): .ops/lint/
	$(BIN)/ansible-playbook lint.yml $(ARGS)

# The Ansible collection (dist/pgrollout-postgresql-<version>.tar.gz) and the AWX execution environment's
# build context (.ops/ee-context; `ansible-builder build` makes the image where a registry is reachable).
docs: venv  ## the docs site: guide and generated reference, into build/docs (Sphinx -W: broken links fail)
	$(BIN)/python scripts/build_docs.py

collection: venv  ## build the Ansible collection tarball (dist/)
	$(BIN)/python scripts/build_collection.py

ee-context: collection  ## the AWX execution environment's build context
	$(BIN)/ansible-builder create -f execution-environment.yml --context .ops/ee-context
