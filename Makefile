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

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
.SECONDARY:
