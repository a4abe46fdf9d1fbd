PYTHON ?= .venv/bin/python

# Board path on emulated 64-bit ARM (needs root; a separate job, not part of the tests; see
# docs/board-install.md). MODEL=path/to/model.tflite, default models/denoise_int8.tflite.
.PHONY: arm64-check edgetpu-readiness
arm64-check:
	nice -n 19 bash scripts/arm64-check.sh $(MODEL)

# Edge TPU readiness of an int8 model (compiles it too when edgetpu_compiler is installed).
edgetpu-readiness:
	$(PYTHON) scripts/edgetpu_readiness.py $(or $(MODEL),models/denoise_int8.tflite) --compile
