/* report_files.h: the folder and the HTML page that `digitd report` and
 * `digitd eval --report` write their pictures into. */
#ifndef DIGITD_CLI_REPORT_FILES_H
#define DIGITD_CLI_REPORT_FILES_H

#include <stdio.h>

/* Creates directory `dir` (its parent must exist; an existing directory is
 * fine). Returns 0, or -1 with a message on stderr in the command's style. */
int report_dir(const char *command, const char *dir);

/* Opens DIR/NAME for writing; on failure reports it and returns NULL. */
FILE *report_open(const char *command, const char *dir, const char *name);

/* Closes f, reporting a failed write of DIR/NAME. Returns 0 or -1. */
int report_close(const char *command, const char *dir, const char *name, FILE *f);

/* Starts and ends a self-contained HTML page (inline CSS, light and dark
 * colours, nothing from another host). */
void report_html_begin(FILE *f, const char *title);
void report_html_end(FILE *f);

/* Writes s escaped for HTML text and attribute values. */
void report_html_text(FILE *f, const char *s);

#endif
