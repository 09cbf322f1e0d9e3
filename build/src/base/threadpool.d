build/src/base/threadpool.o: src/base/threadpool.c src/base/threadpool.h \
 src/base/error.h include/tandem.h
src/base/threadpool.h:
src/base/error.h:
include/tandem.h:
