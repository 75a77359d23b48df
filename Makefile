# refine-dp: the two commands are `make test` and `make demo`; each sets up what is missing.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
SETUP_INPUTS := requirements.txt scripts/setup.sh scripts/constraints.txt \
	$(wildcard ros2_ws/src/*/msg/*.msg ros2_ws/src/*/CMakeLists.txt ros2_ws/src/*/package.xml \
	           ros2_ws/vendor/*/msg/*.msg ros2_ws/vendor/*/CMakeLists.txt ros2_ws/vendor/*/package.xml \
	           ros2_ws/src/*/setup.py ros2_ws/src/*/setup.cfg ros2_ws/src/*/pyproject.toml)
PYTEST_ARGS ?=

.PHONY: setup test demo bench clean help

help:
	@echo "make test   - set up what is missing, then run the test suite"
	@echo "             (make test PYTEST_ARGS='-m \"not slow\"' skips the real-time closed-loop walk)"
	@echo "make demo   - set up what is missing, then run the whole stack in closed loop with the simulated T1"
	@echo "make setup  - only the setup (.venv, dependencies, message packages, workspace packages)"
	@echo "make bench  - benchmarks (figures printed with the machine noted)"
	@echo "make clean  - remove .venv, build/ and runs/"

$(STAMP): $(SETUP_INPUTS)
	bash scripts/setup.sh
	@touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	$(VENV)/bin/refine-dp demo

bench: $(STAMP)
	$(VENV)/bin/refine-dp bench

clean:
	rm -rf $(VENV) build runs
