/* commands.h: the subcommands of `digitd`, one file each (cmd_*.c).
 * Each takes the arguments after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status. */
#ifndef DIGITD_COMMANDS_H
#define DIGITD_COMMANDS_H

int cmd_serve(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_probe(int argc, char **argv); /* health check for containers */
int cmd_report(int argc, char **argv); /* training log to pictures */
int cmd_info(int argc, char **argv);   /* what a model file holds */
int cmd_quantize(int argc, char **argv); /* int8 calibration */

#endif
