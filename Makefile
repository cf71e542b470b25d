# Two entry points for a fresh machine: `make demo` (the main job) and `make test` (the suite).
# Each installs what it needs: Debian packages with apt-get, Python packages into .venv.

VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_RUNTIME := libportaudio2
APT_TEST := pulseaudio pulseaudio-utils libasound2-plugins ffmpeg chromium chromium-driver
DATA ?= ../shared/data
FILE ?= $(DATA)/gtzan/metal/metal.00007.ogg
ENDPOINT ?= tcp://127.0.0.1:5556

.PHONY: demo test test-fast lint bench soak compare train transfer distill finetune thin ensemble quantize musicnn-reference screenshot install \
	apt-runtime apt-test clean

# install the Debian packages that are missing (PortAudio for capture; PulseAudio for the capture tests)
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then $(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
endef

apt-runtime:
	$(call apt_install,$(APT_RUNTIME))

apt-test: apt-runtime
	$(call apt_install,$(APT_TEST))
	@# Node.js for the other-language client test; any node+npm on PATH will do (nodesource's included)
	@command -v node >/dev/null && command -v npm >/dev/null || { $(SUDO) apt-get update -qq && \
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }

$(VENV)/.runtime: pyproject.toml | apt-runtime
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | apt-test
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[train,dev,batch]'
	touch $(VENV)/.runtime $@

install: $(VENV)/.runtime

demo: $(VENV)/.runtime
	@test -f "$(FILE)" || { echo "make demo: $(FILE) not found; run: make demo FILE=your-song.wav" >&2; exit 1; }
	@echo "A subscriber listens on $(ENDPOINT) while rtgenre replays $(FILE) in real time (Ctrl-C stops)."
	@$(VENV)/bin/rtgenre subscribe --endpoint $(ENDPOINT) --until-eos --timeout 10 > .demo-feed.log & \
	$(VENV)/bin/rtgenre replay --endpoint $(ENDPOINT) --wait 5 "$(FILE)"; rc=$$?; wait; \
	echo "The subscriber received $$(wc -l < .demo-feed.log) messages; the last ones:"; tail -n 3 .demo-feed.log; \
	rm -f .demo-feed.log; exit $$rc

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# musicnn's pretrained weights come inside its PyPI wheel; its declared dependencies are ancient: never installed
MUSICNN_WHEEL := .musicnn/musicnn-0.1.0-py3-none-any.whl
$(MUSICNN_WHEEL):
	python3 -m pip download -q --no-deps musicnn==0.1.0 -d .musicnn

# two workers (pytest-xdist): the tiny training runs go one at a time (they use every core) while the
# daemon, capture and browser tests, which mostly wait on sockets and real-time audio, share the rest
test: lint $(MUSICNN_WHEEL)
	$(VENV)/bin/pytest -q -n 2 --dist loadgroup

# the edit loop: everything not marked slow (daemons, capture, browsers, installs, training runs)
test-fast: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(VENV)/bin/pytest -q -x -m "not slow"

bench: $(VENV)/.dev
	$(PY) bench/throughput.py
	$(PY) bench/capture.py
	$(PY) bench/streams.py

# an hour of 12 streams with a subscriber stalled half the time (issue 12's soak)
soak: $(VENV)/.dev
	$(PY) bench/soak.py --minutes 60

GTZAN := --data $(DATA)/gtzan --clips $(DATA)/gtzan_clips --threads 1
LIGHT := --augment light --val-fraction 0
FULL := --augment full --val-fraction 0.15

# every family at the full budget, the recipe ablation of the two leading families, then which half of the full
# recipe costs the CNN (its warps and noise, or early stopping on an inner split): hours on 2 CPU cores, checkpointed
compare: $(VENV)/.dev
	$(PY) -m training compare $(GTZAN) $(FULL) --checkpoints .checkpoints/full --out results
	$(PY) -m training compare $(GTZAN) $(LIGHT) --families cnn,crnn2d --seeds 3 --checkpoints .checkpoints/light \
	  --out results/recipe-light
	$(PY) -m training compare $(GTZAN) --augment full --val-fraction 0 --families cnn --seeds 1 \
	  --checkpoints .checkpoints/full-augment --out results/recipe-parts/full-augment-no-early-stop
	$(PY) -m training compare $(GTZAN) --augment light --val-fraction 0.15 --families cnn --seeds 1 \
	  --checkpoints .checkpoints/early-stop --out results/recipe-parts/light-augment-early-stop
	$(PY) -m training compare $(GTZAN) $(LIGHT) --families crnn2d --seeds 2 --checkpoints .checkpoints/artist \
	  --out results/artist
	$(PY) -m training compare $(GTZAN) $(LIGHT) --families crnn2d --seeds 3 --level-norm \
	  --checkpoints .checkpoints/level-power --out results/level-power

# the shipped default, the level-normalised crnn2d distilled from musicnn (`make distill` cross-validates it): the CV
# comes from the comparisons, so this trains the final model (and the train-part model it scores the valid split
# and input levels with) only, or takes them from the checkpoints
train: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training train $(GTZAN) $(LIGHT) --family crnn2d $(STUDENT) --checkpoints .checkpoints/distill-power \
	  --comparison results/distill-power --comparison results/level-power --comparison results/artist \
	  --comparison results/recipe-light --comparison results --out models/crnn2d-gtzan

# a linear genre head on the frozen pretrained musicnn (the previous musicnn-gtzan), artist-grouped CV (~25 min)
transfer: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training transfer --data $(DATA)/gtzan --clips $(DATA)/gtzan_clips --wheel $(MUSICNN_WHEEL) \
	  --out $(or $(OUT),build/musicnn-linear-gtzan)

# musicnn's back end fine-tuned for genre on its streaming encoder's features (the shipped default, musicnn-gtzan):
# artist-balanced, mixup, the unverified extra/ songs as training material each song weighing 0.3 of a GTZAN artist (never scored);
# artist CV over 3 fold splits, valid, levels (7-8 min on one core with the log-mel cached)
finetune: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training finetune --data $(DATA)/gtzan --clips $(DATA)/gtzan_clips --wheel $(MUSICNN_WHEEL) \
	  --part backend --stream --extra $(DATA)/extra --out $(or $(OUT),models/musicnn-gtzan)

# recipes for the thin genres (sampling, mixup, extra songs, audio augmentation, logit offsets, second views, the mid-end trained too) on the
# default's streamed rows, artist CV over 3 fold splits and the valid split, into results/thin (about 50 min here and an hour more for
# the five mid-end rows, augmented copies cached after)
thin: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training thin --data $(DATA)/gtzan --clips $(DATA)/gtzan_clips --extra $(DATA)/extra \
	  --wheel $(MUSICNN_WHEEL) --out results/thin

# fine-tuned musicnn averaged with crnn2d (the fold checkpoints `make compare` leaves in .checkpoints/artist), by weight
ensemble: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training ensemble --data $(DATA)/gtzan --clips $(DATA)/gtzan_clips --wheel $(MUSICNN_WHEEL) \
	  --checkpoints .checkpoints/artist --out results/ensemble.json

# the default's recipe: crnn2d, level-normalised, learning 70 % from a musicnn teacher's soft labels (fitted per run
# on its training tracks) and from the teacher alone on the unlabelled extra/ songs; artist-grouped CV, 3 seeds
STUDENT := --level-norm --distill 0.7 --extra $(DATA)/extra --wheel $(MUSICNN_WHEEL)
distill: $(VENV)/.dev $(MUSICNN_WHEEL)
	$(PY) -m training compare $(GTZAN) $(LIGHT) --families crnn2d $(STUDENT) --seeds 3 \
	  --checkpoints .checkpoints/distill-power --out results/distill-power

# int8 copy of a model of mel windows (MODEL=NAME|DIR), calibrated on real train-split windows
quantize: $(VENV)/.dev
	$(PY) -m training quantize --model $(or $(MODEL),crnn2d-gtzan) --data $(DATA)/gtzan \
	  --out build/$(notdir $(or $(MODEL),crnn2d-gtzan))-int8

# reference outputs of the original TensorFlow musicnn for the port's parity test, in a throwaway venv
musicnn-reference: $(VENV)/.dev $(MUSICNN_WHEEL)
	PYTHONPATH=. $(PY) tests/fixtures/record_musicnn_reference.py patches $(DATA) tests/fixtures/musicnn_reference.npz
	python3 -m venv .tfenv && .tfenv/bin/pip install -q tensorflow-cpu==2.21.0 tf-keras==2.21.0
	TF_USE_LEGACY_KERAS=1 .tfenv/bin/python tests/fixtures/record_musicnn_reference.py reference $(MUSICNN_WHEEL) \
	  tests/fixtures/musicnn_reference.npz

# refresh results/web-page.png (the README's picture of the live page) from the browser test
screenshot: $(VENV)/.dev
	RTGENRE_SCREENSHOT=1 $(VENV)/bin/pytest -q tests/test_web.py -k page_shows

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .musicnn .tfenv
