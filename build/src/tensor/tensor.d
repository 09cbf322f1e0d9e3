build/src/tensor/tensor.o: src/tensor/tensor.c src/tensor/tensor.h \
 src/base/arena.h src/base/error.h include/tandem.h src/base/numeric.h
src/tensor/tensor.h:
src/base/arena.h:
src/base/error.h:
include/tandem.h:
src/base/numeric.h:
