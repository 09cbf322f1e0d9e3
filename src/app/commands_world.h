/* Shapes-world sub-commands of the tandem CLI (src/app/cmd_world.c). argv excludes the command name;
 * each returns the process exit status: 0 success, 1 failure (message on stderr), 2 bad command line.
 *   tandem world sample|captions ...   dataset images + captions.jsonl, or captions only
 *   tandem score --checker ...         ground-truth checker score of an image for a caption */
#ifndef TDM_APP_COMMANDS_WORLD_H
#define TDM_APP_COMMANDS_WORLD_H

int tdm_cmd_world(int argc, char **argv);
int tdm_cmd_score(int argc, char **argv);

#endif
