/* terminal.h: what the CLI asks of the terminal it draws on. */
#ifndef DIGITD_CLI_TERMINAL_H
#define DIGITD_CLI_TERMINAL_H

/* Columns of the terminal on fd (TIOCGWINSZ), else $COLUMNS, else 80.
 * Always at least 20. */
int cli_terminal_width(int fd);

#endif
