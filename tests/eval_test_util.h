/* Test helpers shared by the adaptive / evaluation tests (test_adaptive, test_edit, test_eval,
 * test_control_eval): files in the temp dir, image equality and the tiny student / teacher pair. */
#ifndef TDM_TESTS_EVAL_TEST_UTIL_H
#define TDM_TESTS_EVAL_TEST_UTIL_H

#include <stddef.h>

#include "tandem.h"

/* The file's text (malloc'ed; NULL when unreadable or over 64 MiB). */
char *tdm_test_read_text(const char *path);
/* 1 when both files are readable and have the same bytes. */
int tdm_test_same_file(const char *a, const char *b);
/* out = "DIR/NAME" ("" when it does not fit). */
void tdm_test_path_in(char *out, size_t n, const char *dir, const char *name);
/* Writes n bytes to path (silently nothing when it cannot be opened). */
void tdm_test_write_file(const char *path, const void *data, size_t n);
/* 1 when both images have pixels, the same size and the same RGB8 bytes. */
int tdm_test_same_image(const tdm_image *a, const tdm_image *b);

/* tiny_sd_model.h's fixtures of the SD1.5 and LCM tiny UNets are present (else the tiny-model parts skip). */
int tdm_test_tiny_present(void);
/* tiny_sd_model.h's engines: e1 with 1 thread, e2 with more (CHECKed). */
void tdm_test_tiny_engines(tdm_engine **e1, tdm_engine **e2);
/* Assembles the tiny models from the fixtures in tdm_test_tmpdir() (the CLI parts name them so):
 * tiny-sd (teacher: unet-sd15-tiny, DDIMScheduler) and tiny-lcm (student: unet-lcm-tiny, LCMScheduler), and
 * loads them (CHECKed; *sd / *lcm NULL on failure, st says why). Needs tiny_sd_fixtures_present(1). */
void tdm_test_tiny_pair(tdm_model **sd, tdm_model **lcm, tdm_status *st);

#endif
