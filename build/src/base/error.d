build/src/base/error.o: src/base/error.c src/base/error.h \
 include/tandem.h
src/base/error.h:
include/tandem.h:
