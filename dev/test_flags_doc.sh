#!/bin/bash
# dev/test_flags_doc.sh -- README.md's flag table against ./train_gpt -h (make test-docs); see
# dev/test_flags_doc.py. BIN=... checks another binary (train_gptcu takes the same flags).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" dev/test_flags_doc.py README.md "${BIN:-./train_gpt}"
