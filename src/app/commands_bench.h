/* `tandem bench` (src/app/cmd_bench.c): times SD-shaped models built with random weights in memory.
 * argv excludes the command name; returns 0 success, 1 failure (message on stderr), 2 bad command line. */
#ifndef TDM_APP_COMMANDS_BENCH_H
#define TDM_APP_COMMANDS_BENCH_H

int tdm_cmd_bench(int argc, char **argv);

#endif
