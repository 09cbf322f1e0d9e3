build/src/io/safetensors.o: src/io/safetensors.c src/io/safetensors.h \
 src/base/error.h include/tandem.h src/tensor/tensor.h src/base/arena.h
src/io/safetensors.h:
src/base/error.h:
include/tandem.h:
src/tensor/tensor.h:
src/base/arena.h:
