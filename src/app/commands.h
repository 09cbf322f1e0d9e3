/* Sub-commands of the tandem CLI. Each returns the process exit status:
 * 0 success, 1 failure (message on stderr), 2 bad command line, 130 cancelled (SIGINT). */
#ifndef TDM_APP_COMMANDS_H
#define TDM_APP_COMMANDS_H

/* cmd: "generate" (text to image) or "img2img" (img2img = 1). argv excludes the command name. */
int tdm_cmd_generate(const char *cmd, int img2img, int argc, char **argv);

#endif
