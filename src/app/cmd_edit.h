/* Editing commands of the tandem CLI (src/app/cmd_edit.c; docs/EDITING.md):
 *   tandem edit --image IN --prompt P ...   adaptive SDEdit editing (or --student-only / --teacher-only)
 *   tandem edit-eval --n N --out DIR ...    the shapes-world edit evaluation
 * argv excludes the command name; exit status 0 success, 1 failure, 2 bad command line, 130 cancelled. */
#ifndef TDM_APP_CMD_EDIT_H
#define TDM_APP_CMD_EDIT_H

int tdm_cmd_edit(int argc, char **argv);
int tdm_cmd_edit_eval(int argc, char **argv);

#endif
