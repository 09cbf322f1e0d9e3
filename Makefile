# tandem build. Targets:
#   make            library (build/libtandem.a) and the CLI (build/tandem)
#   make check      builds and runs the whole test suite (tests/run.sh)
#   make SAN=1 check  the same under ASan+UBSan, in build-san/
#   make WERROR=1   warnings are errors (CI)
# Source layout (one-way dependencies): base -> tensor -> io -> models -> sampling -> pipeline -> app

CC      ?= cc
SAN     ?= 0
WERROR  ?= 0
BUILD   ?= $(if $(filter 1,$(SAN)),build-san,build)

CFLAGS_BASE = -std=c11 -D_DEFAULT_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Wshadow -Wno-unused-parameter \
              -Iinclude -Isrc -MMD -MP -pthread
OPT    = -O2 -g
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ifeq ($(SAN),1)
  OPT  = -O1 -g $(SANFLAGS)
  LDFLAGS += $(SANFLAGS)
endif
ifeq ($(WERROR),1)
  CFLAGS_BASE += -Werror
endif
CFLAGS  += $(CFLAGS_BASE) $(OPT)
LDFLAGS += -pthread
LDLIBS  += -lopenblas -lcjson -lpng -ljpeg -lm

LIB_SRC  := $(sort $(shell find src -name '*.c' ! -path 'src/app/*'))
APP_SRC  := $(sort $(wildcard src/app/*.c))
TEST_SRC := $(filter-out tests/test_util.c,$(sort $(wildcard tests/test_*.c)))
TEST_UTIL_SRC := $(filter-out $(TEST_SRC),$(wildcard tests/*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
APP_OBJ  := $(APP_SRC:%.c=$(BUILD)/%.o)
TEST_UTIL_OBJ := $(TEST_UTIL_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all lib tests check clean demo
all: $(BUILD)/tandem

lib: $(BUILD)/libtandem.a

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtandem.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/tandem: $(APP_OBJ) $(BUILD)/libtandem.a
	$(CC) $(LDFLAGS) $(APP_OBJ) $(BUILD)/libtandem.a $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TEST_UTIL_OBJ) $(BUILD)/libtandem.a
	$(CC) $(LDFLAGS) $< $(TEST_UTIL_OBJ) $(BUILD)/libtandem.a $(LDLIBS) -o $@

tests: $(TEST_BIN) $(BUILD)/tandem

check: tests
	BUILD=$(BUILD) sh tests/run.sh

# The main job on the embedded default: images from models/shapes when shipped; until then the
# engine is run against every reference fixture (../shared/fixtures or $$TDM_FIXTURES).
FIXTURES ?= $(or $(TDM_FIXTURES),../shared/fixtures)
demo: $(BUILD)/tandem
	@if [ -f models/shapes/model_index.json ]; then sh tools/demo.sh $(BUILD)/tandem; \
	elif [ -d "$(FIXTURES)" ]; then \
	  pass=0; fail=0; for d in "$(FIXTURES)"/*/; do \
	    out=$$($(BUILD)/tandem check --fixture "$$d" 2>&1); rc=$$?; \
	    case $$rc in 0) pass=$$((pass+1));; 3) continue;; *) fail=$$((fail+1));; esac; \
	    printf '%-34s %s\n' "$$(basename $$d)" "$$(echo "$$out" | tail -n 1)"; \
	  done; echo "fixtures: $$pass passed, $$fail failed"; [ $$fail -eq 0 ]; \
	else echo "demo: no models/shapes and no fixtures folder $(FIXTURES)"; exit 1; fi

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
