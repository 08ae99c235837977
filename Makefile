# footprint — `make run` sets up and profiles a shipped sample; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SAMPLE ?= sample_initrds/busybox-early-zstd.img
REAL ?= sample_initrds/real
SQUASH ?= $(REAL)/squash
STAMP := $(VENV)/.installed
EDITABLE := --config-settings editable_mode=compat

.PHONY: run test test-fast lint samples samples-real samples-squash samples-kernels rootdisk bench fuzz clean compile
.PHONY: samples-arm64

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# compat: a path in a .pth file; the default editable finder costs every start ~15 ms.
	$(BIN)/pip install -q -e '.[test,report]' $(EDITABLE)
	@# lzop images need python-lzo, which builds only where liblzo2-dev is installed.
	@$(BIN)/pip install -q -e '.[test,report,lzo]' $(EDITABLE) 2>/dev/null || \
	  echo "note: python-lzo not installed (apt-get install liblzo2-dev, then make again):" \
	       "lzo images will be reported as unsupported"
	touch $@

# Byte-compile (cheap when up to date): where PYTHONDONTWRITEBYTECODE is set, every run would
# otherwise compile footprint's modules again.
compile: $(STAMP)
	@$(BIN)/python -m compileall -q footprint

# The main job on a shipped sample: what the image holds, then what each component adds.
run: compile
	$(BIN)/footprint inspect $(SAMPLE)
	@echo
	$(BIN)/footprint components $(SAMPLE)

test: compile
	$(BIN)/pytest -q

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not integration and not slow"

lint: $(STAMP)
	$(BIN)/ruff check footprint tests bench fuzz
	$(BIN)/ruff format --check footprint tests bench fuzz
	$(BIN)/mypy

# The small committed images; rebuilding needs busybox-static, cpio and the compressors.
samples:
	sample_initrds/build.sh

# Large real images from Debian's packages (initramfs-tools, dracut, kdump-tools, the
# installer, a UKI, and with non-free firmware and early microcode) into an ignored folder;
# the integration tests use them. Needs root.
samples-real:
	sample_initrds/build-real.sh $(REAL)

# dracut images whose root is a squashfs or erofs image inside the cpio (Fedora/RHEL kdump's
# layout), made by Debian trixie's dracut in a cached trixie chroot. Needs root and debootstrap.
samples-squash:
	sample_initrds/build-squash.sh $(SQUASH)

# Debian's 6.1 (host), trixie's 6.12 and trixie-backports' newest kernel (>= 6.17: crashkernel=,cma),
# downloaded and extracted, never installed, each with the kdump-tools initrd made for it, and
# a manifest.json (kver, CONFIG_CMA, ...), into an ignored folder. Needs root; cached.
KERNELS ?= $(REAL)/kernels
samples-kernels:
	sample_initrds/build-kernels.sh $(KERNELS)

# Real arm64 images from Debian 12's arm64 packages (kernel, initramfs-tools' and kdump-tools'
# initrds, and the chroot whose kexec the arm64 kdump stage-1 runs), made in an arm64 chroot
# under qemu-user-static, into an ignored folder; cached. Needs root, mmdebstrap, arch-test,
# qemu-user-static, binfmt-support.
ARM64 ?= $(REAL)/arm64
samples-arm64:
	sample_initrds/build-arm64.sh $(ARM64)

# A debootstrapped Debian 12 root disk with kdump-tools (for --root-disk) and the kdump initrd
# its own packages made, into an ignored folder; built only when missing (6-11 min, root).
ROOTDISK ?= $(REAL)/rootdisk
rootdisk:
	sample_initrds/build-rootdisk.sh $(ROOTDISK)

# Medians against the codec's own decompressor, lsinitramfs and lsinitrd, on the real images.
BENCH_IMAGES ?= $(REAL)/initramfs-tools-zstd.img $(REAL)/dracut-systemd.img
bench: compile
	$(BIN)/python bench/inspect.py $(BENCH_IMAGES)
	$(BIN)/python bench/profile.py $(BENCH_IMAGES)

# A fuzzing campaign (atheris) of FUZZ_TIME seconds per target: inputs, coverage, findings.
FUZZ_TIME ?= 300
fuzz: compile
	$(BIN)/python fuzz/campaign.py --time $(FUZZ_TIME)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis .fuzz
