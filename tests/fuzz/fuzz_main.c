/* libFuzzer driver for the safetensors reader and the JSON config loaders (see fuzz_target.h).
 * Build and run (docs/FORMATS.md):
 *   make CC=clang SAN=1 lib
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_DEFAULT_SOURCE -Iinclude -Isrc \
 *       tests/fuzz/fuzz_main.c build-san/libtandem.a -lopenblas -lcjson -lpng -ljpeg -lm -lpthread -o build-san/fuzz
 *   mkdir -p /tmp/corpus && ./build-san/fuzz /tmp/corpus -max_len=65536
 * Seed the corpus with small files prefixed by the target byte (0: safetensors, 2: UNet config, ...). */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_target.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char dir[256];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/tdm-fuzz-%ld", base && *base ? base : "/tmp", (long)getpid());
        mkdir(dir, 0700);
    }
    return tdm_fuzz_one(data, size, dir);
}
