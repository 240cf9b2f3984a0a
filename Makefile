# The two commands: `make run` (try it out) and `make test` (the whole suite).
.PHONY: run test bench setup

run: setup
	.venv/bin/python scripts/dev.py

test:
	scripts/test.sh

setup:
	scripts/setup.sh

bench: setup
	.venv/bin/python bench/outbox.py
	.venv/bin/python bench/announce.py
	scripts/with-postgres.sh .venv/bin/python bench/send.py
	scripts/with-postgres.sh .venv/bin/python bench/workers.py
	scripts/with-postgres.sh .venv/bin/python bench/memory.py
	.venv/bin/python bench/import.py
