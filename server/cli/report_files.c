/* report_files.c: see report_files.h. */
#include "report_files.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "options.h"

int report_dir(const char *command, const char *dir) {
    if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
        cli_fail(command, "%s: exists and is not a directory", dir);
        return -1;
    }
    cli_fail(command, "%s: cannot create the directory: %s", dir, strerror(errno));
    return -1;
}

FILE *report_open(const char *command, const char *dir, const char *name) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) cli_fail(command, "%s: cannot write: %s", path, strerror(errno));
    return f;
}

int report_close(const char *command, const char *dir, const char *name, FILE *f) {
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        cli_fail(command, "%s/%s: the write failed", dir, name);
        return -1;
    }
    return 0;
}

void report_html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

void report_html_begin(FILE *f, const char *title) {
    fputs("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>", f);
    report_html_text(f, title);
    fputs("</title>\n<style>\n"
          ":root { color-scheme: light dark; }\n"
          "body { font: 15px/1.5 system-ui, sans-serif; margin: 1.5rem auto; max-width: 64rem;"
          " padding: 0 1rem; color: #1a1a1a; background: #ffffff; }\n"
          "img, object { max-width: 100%; height: auto; background: #ffffff;"
          " border: 1px solid #cccccc; border-radius: 4px; }\n"
          "table { border-collapse: collapse; font-variant-numeric: tabular-nums; }\n"
          "th, td { padding: 0.2rem 0.7rem; border-bottom: 1px solid #dddddd; text-align: right; }\n"
          "h1 { font-size: 1.6rem; overflow-wrap: anywhere; }\n"
          "code { font-size: 0.9em; overflow-wrap: anywhere; }\n"
          ".muted { color: #555555; }\n"
          "@media (prefers-color-scheme: dark) {\n"
          "  body { color: #eeeeee; background: #16181c; }\n"
          "  th, td { border-color: #3a3d44; } .muted { color: #b8bcc4; }\n"
          "}\n</style>\n</head>\n<body>\n<h1>", f);
    report_html_text(f, title);
    fputs("</h1>\n", f);
}

void report_html_end(FILE *f) {
    fprintf(f, "<p class=\"muted\">Written by digitd %s.</p>\n</body>\n</html>\n",
            DIGITD_VERSION);
}
