/* Adaptive student-teacher commands of the tandem CLI (src/app/cmd_adaptive.c); docs/ADAPTIVE.md.
 *   tandem generate --adaptive ...   student -> oracle -> keep / teacher refine / regenerate
 *   tandem calibrate ...             oracle-score percentiles of student samples (resumable)
 * argv excludes the command name; exit status 0 success, 1 failure, 2 bad command line, 130 cancelled. */
#ifndef TDM_APP_COMMANDS_ADAPTIVE_H
#define TDM_APP_COMMANDS_ADAPTIVE_H

int tdm_cmd_adaptive_generate(const char *cmd, int argc, char **argv);
int tdm_cmd_calibrate(int argc, char **argv);

#endif
