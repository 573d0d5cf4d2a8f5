# ktstr build, test and install. `make test` is what CI runs (.ci/run).
GO        ?= go
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS   := -s -w -X github.com/ktstr-go/ktstr/pkg/cmdutil.Version=$(VERSION)
TOOLS     := ktstr-mkinitramfs ktstr-hostlock ktstr-boot ktstr-monitor ktstr-decode ktstr-kernel ktstr-run ktstr-gauntlet ktstr-report
GUEST     := $(wildcard cmd/ktstr-init)
BINS      := $(TOOLS) $(notdir $(GUEST))

export CGO_ENABLED = 0

# Fixtures: a user points these at their own kernel and schedulers; when
# ../shared (this project's fixture tree) exists the tests default to it.
SHARED ?= $(abspath $(CURDIR)/../shared)
ifneq ($(wildcard $(SHARED)/kernels/linux-6.12-ktstr/bzImage),)
KTSTR_KERNEL     ?= $(SHARED)/kernels/linux-6.12-ktstr/bzImage
KTSTR_VMLINUX    ?= $(SHARED)/kernels/linux-6.12-ktstr/vmlinux
KTSTR_SYSTEM_MAP ?= $(SHARED)/kernels/linux-6.12-ktstr/System.map
KTSTR_SCHEDULERS ?= $(SHARED)/schedulers
endif
export KTSTR_KERNEL KTSTR_VMLINUX KTSTR_SYSTEM_MAP KTSTR_SCHEDULERS
export KTSTR_BIN = $(CURDIR)/bin

.PHONY: all test unit e2e check install clean bench demo FORCE
all: $(BINS:%=bin/%)

bin/%: FORCE
	@mkdir -p bin
	$(GO) build $(BUILDTAGS) -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/$*

# --- ktstr-hostlock ---
# urfave/cli's man/markdown generators pull in blackfriday, whose package
# init costs ~0.3 ms per start; ktstr-hostlock's start-up is benchmarked
# against flock(1) (bench/hostlock.sh), so it is built without them.
bin/ktstr-hostlock: BUILDTAGS = -tags urfave_cli_no_docs
# --- end ktstr-hostlock ---

# ktstr-boot's set-up time, process start to first KVM_RUN, is measured
# (docs/setup-time.md): the same ~1.5-2.5 ms of blackfriday init is left out.
bin/ktstr-boot: BUILDTAGS = -tags urfave_cli_no_docs

check:
	@out=$$(gofmt -l . 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

unit: all
	bash test/unit.sh

e2e: all
	bash test/e2e.sh

test: check unit e2e

bench: all
	$(GO) test -run '^$$' -bench . -benchtime 2x ./...

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5
	install -m 0755 $(BINS:%=bin/%) $(DESTDIR)$(BINDIR)/
	install -m 0644 man/*.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 man/*.5 $(DESTDIR)$(MANDIR)/man5/

# --- lab ---
# The README's main job: installs what it needs, builds, boots a kernel with
# a real scheduler and prints the decoded result (test/lab/demo.sh).
demo:
	bash test/lab/demo.sh
# --- end lab ---

clean:
	rm -rf bin
