# Everything a fresh machine needs: `make demo` runs the client against a local
# demo homeserver, `make test` runs the whole suite. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo sydent test soak lint bench bench-quick screenshots clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	# An editable install writes no bytecode: compile it now, not on the first start
	# (issue 13: ~170 ms more to the first painted room list without it).
	$(BIN)/python -m compileall -q tui_client
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m tui_client.devtools.demo

# matrix-sydent (the identity server of tests/integration/test_identity.py) needs its own
# venv (its signedjson pin clashes with Synapse's), made from requirements-sydent.lock.
sydent: $(STAMP)
	$(BIN)/python -c "from tui_client.devtools.sydent import ensure_venv; ensure_venv()"

# The suite runs on vodozemac, the default crypto backend (tests/crypto runs both);
# then the E2EE integration tests again on python-olm (about a minute).
# If pytest's own process dies (a C abort, a segfault), tests/support/crash_report.py
# prints the stacks and, on the last line, the test that was running.
CRASH_DIR := .tmp/pytest-crash
test: $(STAMP) sydent
	TUI_CLIENT_CRASH_DIR=$(CRASH_DIR) $(BIN)/python -m pytest -q \
	  || { rc=$$?; $(BIN)/python -m tests.support.crash_report $(CRASH_DIR); exit $$rc; }
	TUI_CLIENT_CRASH_DIR=$(CRASH_DIR)-olm TUI_CLIENT_CRYPTO_BACKEND=olm $(BIN)/python -m pytest -q $(OLM_QUICK) \
	  || { rc=$$?; $(BIN)/python -m tests.support.crash_report $(CRASH_DIR)-olm; exit $$rc; }

# Every test where the crypto backend matters, on python-olm (113 tests, 5-6 minutes on 2 cores).
OLM_QUICK := tests/integration/test_e2ee.py tests/engine/test_crypto_backend_choice.py
OLM_TESTS := tests/engine \
	$(addprefix tests/integration/test_,e2ee.py encrypted_cache.py first_login_cross_signing.py \
	  recovery.py verification.py verification_nio.py devices.py threads_e2ee.py \
	  mark_all_read_encrypted.py attachments.py oauth_e2ee.py) \
	$(addprefix tests/ui/test_,cross_signing_setup_ui.py recovery_ui.py security_actions.py \
	  verification_bare_start.py verification_flow.py verification_qr.py verification_ui.py \
	  store_upgrade_ui.py)
test-olm: $(STAMP)
	TUI_CLIENT_CRYPTO_BACKEND=olm $(BIN)/python -m pytest -q $(OLM_TESTS)

# The long forms of the real-world tests (issue 19; tests/resilience): 50 kills while
# sending, 10 minutes of a flaky network over sliding sync and 10 over /sync v2, a 2-hour
# soak (bench/soak.py); about 2.7 hours in all. `make test` runs each in a short form.
soak: $(STAMP)
	TUI_CLIENT_SOAK=1 $(BIN)/python -m pytest -q -s tests/resilience

lint: $(STAMP)
	$(BIN)/ruff check tui_client tests bench
	$(BIN)/ruff format --check tui_client tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy

# The full run (minutes); `make bench ARGS="--only ingest"` passes options through.
bench: $(STAMP)
	$(BIN)/python -m bench $(ARGS)

# Every benchmark once on tiny sizes: shows they all run (tests/test_bench_quick.py does
# the same in `make test`); the figures mean nothing.
bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

# Accept the UI as it renders now: rewrites the snapshot baselines
# (tests/ui/__snapshots__) and the README's screenshots/*.svg, which the UI tests write
# when TUI_CLIENT_UPDATE_SCREENSHOTS is set. Review the diff before committing it.
screenshots: $(STAMP)
	TUI_CLIENT_UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/ui --snapshot-update

clean:
	rm -rf $(VENV) .venv-sydent .pytest_cache .mypy_cache .ruff_cache
