/* routes_model.c: GET /model, what the loaded model is. */
#include <stdio.h>
#include <time.h>

#include "routes.h"

/* A Unix time as "2024-05-01T12:00:00Z" (UTC). */
static void iso8601(int64_t t, char *buf, size_t size) {
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A fraction, or null when the model file recorded none (-1). */
static void json_fraction(text_buffer *t, const char *key, double v) {
    if (v >= 0 && v <= 1)
        tb_printf(t, ",\"%s\":%.4f", key, v);
    else
        tb_printf(t, ",\"%s\":null", key);
}

void route_model(exchange *x) {
    model_ref ref;
    if (model_repo_acquire(ex_server(x)->repo, NULL, NULL, &ref) != REPO_OK) {
        ex_error(x, 503, "no model is loaded yet");
        return;
    }
    served_model *m = ref.model;
    const nn_meta *meta = &m->net->meta;
    char loaded[32], created[32];
    iso8601((int64_t)m->loaded_at.tv_sec, loaded, sizeof loaded);
    text_buffer t;
    tb_init(&t, 1024);
    tb_printf(&t, "{\"id\":");
    tb_json_string(&t, m->id);
    tb_printf(&t, ",\"name\":");
    tb_json_string(&t, m->name);
    tb_printf(&t, ",\"repository_name\":");
    tb_json_string(&t, ref.name);
    tb_printf(&t, ",\"version\":%llu,\"architecture\":", (unsigned long long)ref.version);
    tb_json_string(&t, m->architecture);
    tb_printf(&t, ",\"parameters\":%zu", m->net->n_params);
    const bool int8 = work_queue_qnet(ex_server(x)->queue, m) != NULL;
    tb_printf(&t, ",\"precision\":\"%s\"", int8 ? "int8" : "fp32");
    json_fraction(&t, "test_accuracy", meta->test_accuracy);
    json_fraction(&t, "validation_accuracy", meta->val_accuracy);
    tb_printf(&t, ",\"sha256\":\"%s\",\"file_bytes\":%zu", m->sha256, m->file_bytes);
    if (meta->created_unix > 0) {
        iso8601(meta->created_unix, created, sizeof created);
        tb_printf(&t, ",\"created_at\":\"%s\"", created);
    } else {
        tb_printf(&t, ",\"created_at\":null");
    }
    tb_printf(&t, ",\"loaded_at\":\"%s\"}\n", loaded);
    served_model_release(m);
    ex_send_json(x, 200, &t);
}
