/* terminal.c: see terminal.h. */
#include "terminal.h"

#include <stdlib.h>
#include <sys/ioctl.h>

int cli_terminal_width(int fd) {
    int cols = 0;
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) cols = ws.ws_col;
    if (cols <= 0) {
        const char *c = getenv("COLUMNS");
        cols = c ? atoi(c) : 0;
    }
    if (cols <= 0) cols = 80;
    return cols < 20 ? 20 : cols;
}
