# Bounded fuzzing of the image pipeline and the model validators (see scripts/fuzz.py).
PYTHON ?= .venv/bin/python
FUZZ_SECONDS ?= 600
FUZZ_EXECS ?= 100000

.PHONY: fuzz fuzz-smoke

fuzz:
	nice -n 19 $(PYTHON) scripts/fuzz.py --seconds $(FUZZ_SECONDS) --execs $(FUZZ_EXECS)

fuzz-smoke:
	nice -n 19 $(PYTHON) scripts/fuzz.py --seconds 30 --execs 2000

# Board path on emulated 64-bit ARM (needs root; a separate job, not part of the tests; see
# docs/board-install.md). MODEL=path/to/model.tflite, default models/denoise_int8.tflite.
.PHONY: arm64-check edgetpu-readiness
arm64-check:
	nice -n 19 bash scripts/arm64-check.sh $(MODEL)

# Edge TPU readiness of an int8 model (compiles it too when edgetpu_compiler is installed).
edgetpu-readiness:
	$(PYTHON) scripts/edgetpu_readiness.py $(or $(MODEL),models/denoise_int8.tflite) --compile
