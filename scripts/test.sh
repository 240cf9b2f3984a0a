#!/usr/bin/env bash
# The whole test suite from a fresh machine: system packages, virtualenv, a throwaway
# PostgreSQL (unless TEST_POSTGRES_URL is set), then mypy and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/system-packages.sh
scripts/setup.sh
# Style (issue 16): ruff's rules and the 120-column line length in pyproject.toml.
.venv/bin/ruff check  # the whole repository but Alembic's generated migrations/versions
# The architecture (issue 16): the import-linter contracts in pyproject.toml; a broken one fails the run.
.venv/bin/lint-imports --no-cache
# Types (issue 16): strict on mailer/, configured in pyproject.toml; a type error fails the run.
.venv/bin/mypy
# Test processes (pytest-xdist): one more than the CPUs, at most 5, as the suite waits on real servers and
# processes much of the time (on 2 CPUs, 2 processes left CPU time idle). Tests that start real
# processes and time them run on one of them in turn (tests/conftest.py). MAILER_TEST_PROCESSES=0: one process.
processes="${MAILER_TEST_PROCESSES:-$(( $(nproc) + 1 > 5 ? 5 : $(nproc) + 1 ))}"
export processes
run_pytest() { .venv/bin/python -m pytest -n "$processes" --dist loadgroup "$@"; }
if [ -n "${TEST_POSTGRES_URL:-}" ]; then
  run_pytest "$@"
else
  export -f run_pytest
  scripts/with-postgres.sh bash -c 'run_pytest "$@"' run_pytest "$@"
fi
