# Starling: the two commands a new user needs are `make run` and `make test`.
# Each installs what is missing (Debian packages) first.

SWIFT ?= swift
APT_PACKAGES := libnng-dev libprotobuf-c-dev protobuf-c-compiler libmbedtls-dev pkg-config python3-prometheus-client openssh-server openssh-client
RUN_EXAMPLE ?= Sweep

.PHONY: run test deps build release bench proto check-proto clean

## run: the main job: a hyperparameter sweep (Examples/Sweep) on an embedded cluster.
run: deps
	$(SWIFT) run -c release $(RUN_EXAMPLE)

## test: every test (unit, multi-process, fault); what CI runs.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

## deps: install missing Debian packages (as root, or with sudo).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

## bench: release-built benchmarks; add ARGS="--peer ray" to compare with Ray 2.60.
bench: deps
	$(SWIFT) build -c release --product starling-bench
	$$($(SWIFT) build -c release --show-bin-path)/starling-bench $(ARGS)

## proto: regenerate the C and Swift code for Protocols/*.proto.
proto: deps
	scripts/gen-proto

check-proto: deps
	scripts/gen-proto --check

clean:
	rm -rf .build
