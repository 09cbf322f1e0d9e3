/* Strict command-line value parsing for the tandem CLI: the whole string must be a number in range,
 * else a one-line message "tandem CMD: --opt: ..." on stderr and 0 is returned. */
#ifndef TDM_APP_ARGS_H
#define TDM_APP_ARGS_H

#include <stdint.h>

/* Each returns 1 on success. cmd and opt name the command and option in the message. */
int tdm_arg_int(const char *cmd, const char *opt, const char *s, long lo, long hi, int *out);
int tdm_arg_float(const char *cmd, const char *opt, const char *s, double lo, double hi, float *out);
/* Unsigned 64-bit (decimal); "-1" gives *is_random = 1. */
int tdm_arg_seed(const char *cmd, const char *opt, const char *s, uint64_t *out, int *is_random);
/* A random seed for --seed -1: /dev/urandom, else the clock and the pid; below 2^63 (friendlier for tools
 * that parse it as signed). */
uint64_t tdm_arg_random_seed(void);

/* Option with a value: matches "--name VALUE" and "--name=VALUE" (aliases: up to 3 names, NULL-terminated
 * list). Returns the value and advances *i, or NULL when argv[*i] is not this option. A matching option
 * without a value prints "tandem CMD: --name needs a value" and sets *err. */
const char *tdm_arg_value(const char *cmd, int argc, char **argv, int *i, const char *const *names, int *err);

#endif
