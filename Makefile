# The two commands a newcomer needs: `make run` and `make test`.
CARGO ?= cargo
# Keep the build to the machine's cores; CI runs on 2.
export CARGO_TERM_COLOR ?= never

.PHONY: run test lint fmt check unit bench bench-quick clean

run:
	$(CARGO) run --release -p loyalty-cli --bin loyalty -- serve

test: lint unit

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

fmt:
	$(CARGO) fmt --all

bench:
	@echo "make bench: not built yet (issue 6)"; exit 1

clean:
	$(CARGO) clean
