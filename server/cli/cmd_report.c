/*
 * cmd_report.c: `digitd report LOG --out DIR`: a training log written by
 * `digitd train --log` (CSV or JSON lines) to pictures: loss and accuracy
 * curves as SVG, and an index.html with them and a table of the epochs.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli/options.h"
#include "cli/report_files.h"
#include "cli/svg_chart.h"
#include "commands.h"
#include "nn.h"

/* A log is at most this large (10^5 epochs of ~300 bytes fit easily). */
#define MAX_LOG_BYTES ((size_t)64 << 20)
#define MAX_EPOCHS 100000

/* The columns of a log (train --log), NaN where a value is missing. */
enum { C_EPOCH, C_TRAIN_LOSS, C_TRAIN_ACC, C_VAL_LOSS, C_VAL_ACC, C_LR, C_RATE,
       C_SECONDS, C_COUNT };
static const char *const column_names[C_COUNT] = {
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
    "samples_per_sec", "seconds",
};

typedef struct {
    int n;
    double *col[C_COUNT]; /* each (MAX_EPOCHS) */
} training_log;

static int add_row(training_log *log, const double *row) {
    if (log->n >= MAX_EPOCHS) return -1;
    for (int c = 0; c < C_COUNT; c++) log->col[c][log->n] = row[c];
    log->n++;
    return 0;
}

/* JSON lines: objects with the column names as keys; lines whose "event"
 * is not "epoch" (train --json's final line) are skipped. */
static int parse_json_lines(char *text, training_log *log, char *why, size_t wl) {
    int line_no = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) continue;
        cJSON *o = cJSON_Parse(line);
        if (!cJSON_IsObject(o)) {
            cJSON_Delete(o);
            snprintf(why, wl, "line %d is not a JSON object", line_no);
            return -1;
        }
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        if (cJSON_IsString(ev) && strcmp(ev->valuestring, "epoch") != 0) {
            cJSON_Delete(o);
            continue;
        }
        double row[C_COUNT];
        for (int c = 0; c < C_COUNT; c++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, column_names[c]);
            row[c] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        cJSON_Delete(o);
        if (!isfinite(row[C_EPOCH])) {
            snprintf(why, wl, "line %d has no \"epoch\"", line_no);
            return -1;
        }
        if (add_row(log, row)) {
            snprintf(why, wl, "more than %d epochs", MAX_EPOCHS);
            return -1;
        }
    }
    return 0;
}

/* CSV with a header line naming the columns (any order, extra columns
 * ignored); an empty field is a missing value. */
static int parse_csv(char *text, training_log *log, char *why, size_t wl) {
    int where[64], n_fields = 0, line_no = 0;
    for (int k = 0; k < 64; k++) where[k] = -1;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        line_no++;
        line[strcspn(line, "\r")] = '\0';
        if (!*line) continue;
        double row[C_COUNT];
        for (int c = 0; c < C_COUNT; c++) row[c] = NAN;
        int field = 0;
        for (char *p = line;; field++) {
            size_t len = strcspn(p, ",");
            char save = p[len];
            p[len] = '\0';
            if (n_fields == 0 && field < 64) {
                for (int c = 0; c < C_COUNT; c++)
                    if (strcmp(p, column_names[c]) == 0) where[field] = c;
            } else if (field < 64 && where[field] >= 0 && *p) {
                char *end;
                double x = strtod(p, &end);
                if (*end) {
                    snprintf(why, wl, "line %d: '%s' is not a number", line_no, p);
                    return -1;
                }
                row[where[field]] = x;
            }
            if (!save) break;
            p += len + 1;
        }
        if (n_fields == 0) {
            n_fields = field + 1;
            bool has_epoch = false;
            for (int k = 0; k < 64; k++) has_epoch |= where[k] == C_EPOCH;
            if (!has_epoch) {
                snprintf(why, wl, "the first line is not a header with an 'epoch' column");
                return -1;
            }
            continue;
        }
        if (!isfinite(row[C_EPOCH])) {
            snprintf(why, wl, "line %d has no epoch", line_no);
            return -1;
        }
        if (add_row(log, row)) {
            snprintf(why, wl, "more than %d epochs", MAX_EPOCHS);
            return -1;
        }
    }
    return 0;
}

enum { O_OUT, O_TITLE, O_COUNT };
static const cli_option report_options[O_COUNT] = {
    [O_OUT] = {"out", 'o', NULL, CLI_STRING, "DIR", 0, 0, NULL,
               "folder to write loss.svg, accuracy.svg and index.html into "
               "(required; created if missing)"},
    [O_TITLE] = {"title", 0, NULL, CLI_STRING, "TEXT", 0, 0, NULL,
                 "title of the page (default: the log's file name)"},
};
static const cli_command report_command = {
    "report", "LOG --out DIR",
    "Draws a training log written by `digitd train --log LOG` (CSV or JSON\n"
    "lines) as loss and accuracy curves (SVG) with an HTML page.",
    report_options, O_COUNT, 1, 1, NULL,
};

static int write_chart(const char *dir, const char *name, const char *title,
                       const char *y_label, const training_log *log, int train_col,
                       int val_col) {
    FILE *f = report_open("report", dir, name);
    if (!f) return -1;
    svg_series s[2] = {{"training", "#1f5fa8", log->col[train_col]},
                       {"validation", "#c2410c", log->col[val_col]}};
    bool has_val = false;
    for (int i = 0; i < log->n; i++) has_val |= isfinite(log->col[val_col][i]);
    svg_line_chart(f, title, "epoch", y_label, log->col[C_EPOCH], log->n, s,
                   has_val ? 2 : 1);
    return report_close("report", dir, name, f);
}

static void cell(FILE *f, double v, const char *fmt) {
    fputs("<td>", f);
    if (isfinite(v)) fprintf(f, fmt, v);
    else fputs("&ndash;", f);
    fputs("</td>", f);
}

int cmd_report(int argc, char **argv) {
    cli_value v[O_COUNT] = {0};
    int rest, st = cli_parse(&report_command, argc, argv, v, &rest);
    if (st >= 0) return st;
    const char *path = argv[rest], *dir = v[O_OUT].str;
    if (!dir) return cli_usage_error(&report_command, "--out DIR is required");

    nn_error err;
    uint8_t *bytes;
    size_t len;
    if (nn_read_file(path, MAX_LOG_BYTES, &bytes, &len, &err))
        return cli_fail("report", "%s", err.msg);
    char *text = malloc(len + 1);
    training_log log = {0};
    bool ok = text != NULL;
    for (int c = 0; c < C_COUNT && ok; c++)
        ok = (log.col[c] = malloc(sizeof(double) * MAX_EPOCHS)) != NULL;
    int rc = 0;
    if (!ok) {
        rc = cli_fail("report", "out of memory");
        goto done;
    }
    memcpy(text, bytes, len);
    text[len] = '\0';
    if (strlen(text) != len) {
        rc = cli_fail("report", "%s: holds NUL bytes; not a training log", path);
        goto done;
    }
    char why[200] = "";
    const char *first = text + strspn(text, " \t\r\n");
    if ((*first == '{' ? parse_json_lines(text, &log, why, sizeof why)
                       : parse_csv(text, &log, why, sizeof why)) != 0) {
        rc = cli_fail("report", "%s: %s", path, why);
        goto done;
    }
    if (log.n == 0) {
        rc = cli_fail("report", "%s: no epochs in the log", path);
        goto done;
    }
    if (report_dir("report", dir) ||
        write_chart(dir, "loss.svg", "Loss (cross-entropy) per epoch", "loss", &log,
                    C_TRAIN_LOSS, C_VAL_LOSS) ||
        write_chart(dir, "accuracy.svg", "Accuracy per epoch", "accuracy", &log,
                    C_TRAIN_ACC, C_VAL_ACC)) {
        rc = 1;
        goto done;
    }
    FILE *f = report_open("report", dir, "index.html");
    if (!f) {
        rc = 1;
        goto done;
    }
    const char *slash = strrchr(path, '/');
    char title[300];
    snprintf(title, sizeof title, "Training: %s", v[O_TITLE].str ? v[O_TITLE].str
                                                                 : slash ? slash + 1 : path);
    report_html_begin(f, title);
    int best = -1;
    for (int i = 0; i < log.n; i++)
        if (isfinite(log.col[C_VAL_ACC][i]) &&
            (best < 0 || log.col[C_VAL_ACC][i] > log.col[C_VAL_ACC][best])) best = i;
    fprintf(f, "<p>%d epochs", log.n);
    if (best >= 0)
        fprintf(f, "; best validation accuracy %.4f at epoch %.0f (its weights are "
                   "the ones kept)", log.col[C_VAL_ACC][best], log.col[C_EPOCH][best]);
    fputs(".</p>\n<p><img src=\"loss.svg\" alt=\"training and validation loss per epoch\" "
          "width=\"720\" height=\"420\"></p>\n<p><img src=\"accuracy.svg\" "
          "alt=\"training and validation accuracy per epoch\" width=\"720\" "
          "height=\"420\"></p>\n<table>\n<tr><th>epoch</th><th>train loss</th>"
          "<th>train acc</th><th>val loss</th><th>val acc</th><th>learning rate</th>"
          "<th>samples/s</th><th>seconds</th></tr>\n", f);
    for (int i = 0; i < log.n; i++) {
        fputs(i == best ? "<tr style=\"font-weight:bold\">" : "<tr>", f);
        cell(f, log.col[C_EPOCH][i], "%.0f");
        cell(f, log.col[C_TRAIN_LOSS][i], "%.4f");
        cell(f, log.col[C_TRAIN_ACC][i], "%.4f");
        cell(f, log.col[C_VAL_LOSS][i], "%.4f");
        cell(f, log.col[C_VAL_ACC][i], "%.4f");
        cell(f, log.col[C_LR][i], "%.2e");
        cell(f, log.col[C_RATE][i], "%.0f");
        cell(f, log.col[C_SECONDS][i], "%.1f");
        fputs("</tr>\n", f);
    }
    fputs("</table>\n", f);
    report_html_end(f);
    if (report_close("report", dir, "index.html", f)) rc = 1;
    else printf("wrote %s/index.html, %s/loss.svg, %s/accuracy.svg\n", dir, dir, dir);
done:
    for (int c = 0; c < C_COUNT; c++) free(log.col[c]);
    free(text);
    free(bytes);
    return rc;
}
