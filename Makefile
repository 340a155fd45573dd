# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: run test lint fmt unit contract bench bench-quick clean dashboard-vendor

# The server on the embedded SQLite store (data/loyalty.sqlite) with the demo program and keys.
# Without the EventStoreDB backend (the cargo feature `eventstoredb`), which the embedded store
# does not need: a cold build takes about a sixth less. `cargo build --release -p loyalty-cli`
# builds the binary with every backend.
run:
	$(CARGO) run --release -p loyalty-cli --bin loyalty --no-default-features -- serve

# Everything CI checks: formatting, clippy with -D warnings, every test, the API contract run
# (schemathesis against the served OpenAPI document, for every role), and the benchmark's smoke
# run (every figure produced and positive; no speed is asserted).
test: lint unit contract bench-quick

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# What `make run` builds: the command without the EventStoreDB backend.
	$(CARGO) clippy -p loyalty-cli --no-default-features --lib --bins -- -D warnings

# The dashboard's browser test (tests/dashboard.rs) runs in Debian's headless Chromium:
# browser.sh installs chromium and chromium-driver when missing (and the accessibility checker
# axe-core, with npm ci), and the variable tells the
# test where chromedriver is (without it, the test says it is skipped).
unit:
	bash tests/dashboard/browser.sh
	LOYALTY_TEST_CHROMEDRIVER=/usr/bin/chromedriver $(CARGO) test --workspace

# The dashboard's vendored Chart.js against the package its lockfile pins (npm ci, then cmp);
# needs npm and the registry, so not part of `make test`.
dashboard-vendor:
	bash tests/dashboard/check-vendor.sh

# schemathesis (pinned, installed from PyPI into target/contract-venv) against a server started
# on a fresh store, with every check, as each role's key and as a member token: zero failures.
contract:
	CARGO="$(CARGO)" bash tests/contract/run.sh

fmt:
	$(CARGO) fmt --all

# The figures of the README's Performance section (release build, under 10 minutes on 2 cores).
# `cargo run` builds only the bench: its HTTP part also runs `loyalty-load`, built beside it.
bench:
	$(CARGO) build --release -p loyalty-bench --bins
	$(CARGO) run --release -p loyalty-bench -- --out target/bench/summary.json

# Small sizes on the test build, well under 2 minutes: checks that every figure is produced.
bench-quick:
	$(CARGO) build -p loyalty-bench --bins
	$(CARGO) run -p loyalty-bench -- --quick --out target/bench/summary-quick.json

clean:
	$(CARGO) clean
