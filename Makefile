# The two commands: `make demo` and `make test`. Both install what is missing
# (tools/install-deps.sh) and build first.
BUILD_DIR ?= build
JOBS ?= 2
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DSLUICE_WERROR=ON
endif

.PHONY: all deps build test demo bench asan install clean

all: build

deps:
	@tools/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j$(JOBS)
	@tools/install-python-path.sh $(BUILD_DIR)

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure --timeout 600 -j$(JOBS)

demo: build
	@tools/demo.sh $(BUILD_DIR)

bench: build
	@tools/bench.sh $(BUILD_DIR)

# Address and undefined-behaviour sanitizers over the whole test suite.
asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j$(JOBS)
	@cd build-asan && ctest --output-on-failure --timeout 900 -j$(JOBS)

# The daemons, the CLI and the mount helper on the system PATH (mount(8)
# runs `sluice` for a fuse.sluice fstab entry from there).
PREFIX ?= /usr/local
install: build
	@install -d $(PREFIX)/bin
	@install -m 755 $(BUILD_DIR)/tools/sluice $(BUILD_DIR)/fuse/sluice-fuse $(BUILD_DIR)/metadata/sluice-meta $(BUILD_DIR)/storage_node/sluice-storage $(PREFIX)/bin/
	@echo "installed sluice, sluice-fuse, sluice-meta, sluice-storage into $(PREFIX)/bin"

clean:
	rm -rf $(BUILD_DIR) build-asan
