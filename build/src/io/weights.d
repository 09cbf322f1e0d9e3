build/src/io/weights.o: src/io/weights.c src/io/weights.h \
 src/base/error.h include/tandem.h src/io/safetensors.h \
 src/tensor/tensor.h src/base/arena.h
src/io/weights.h:
src/base/error.h:
include/tandem.h:
src/io/safetensors.h:
src/tensor/tensor.h:
src/base/arena.h:
