build/src/base/json.o: src/base/json.c src/base/json.h src/base/error.h \
 include/tandem.h
src/base/json.h:
src/base/error.h:
include/tandem.h:
