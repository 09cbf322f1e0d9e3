build/src/base/numeric.o: src/base/numeric.c src/base/numeric.h
src/base/numeric.h:
