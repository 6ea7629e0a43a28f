/* work_queue.h: the bounded queue between the HTTP threads and the
 * inference workers, and the dynamic batcher that runs on the workers.
 *
 * An HTTP thread that has a complete request body wraps it in a job and
 * offers it (work_queue_offer); a full queue refuses at once, so the
 * caller answers 503 instead of queueing forever. A worker takes the
 * oldest job, turns its bytes into inputs (decoding and normalising
 * images: the expensive, hostile part), then gathers further queued jobs
 * for the same model until it has `max_batch` inputs or `max_wait_us` has
 * passed since it took the first one, runs ONE forward pass over all of
 * them, and hands each job its rows of probabilities. A job past its
 * deadline when a worker reaches it is answered 503 without being decoded.
 * A lone request therefore waits at most max_wait_us for company.
 *
 * A small job of a cheap model skips the queue: work_queue_run_here runs
 * it on the thread that has it, because handing it to a worker costs
 * more than the work. On these 2-core VMs a hand-off (the queue's
 * semaphore, libmicrohttpd's suspend and resume, the wake-ups) costs
 * 15-20 µs of CPU: the MLP's JSON requests took 48-51 µs of the daemon's
 * CPU each handed off, 27-34 µs run where they arrived, and its forward
 * pass is about 5 µs of that (bench/README, "Small requests where they
 * arrive"). The CNN (11.5 M multiply-adds) gains more from batching and
 * keeps the queue.
 *
 * Every worker takes jobs whenever one is queued: work_queue.c says why.
 *
 * The queue knows nothing of HTTP: a job carries three callbacks, set by
 * whoever made it (the /predict and v2 routes). */
#ifndef DIGITD_WORK_QUEUE_H
#define DIGITD_WORK_QUEUE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "model_repo.h"
#include "nn.h"

typedef struct job job;

typedef struct {
    /* Bytes -> inputs, on a worker. Fills j->inputs (n, 784) malloc'd and
     * j->n_inputs, and returns 0; or sets j->status and j->message (an
     * HTTP error) and returns -1. A parse that answered by itself leaves
     * n_inputs 0 with status and answer set. */
    int (*parse)(job *j);
    /* Results -> answer, on a worker: answers (n_inputs, nn_classify's:
     * probabilities and verdict) for the inputs, or NULL when the forward
     * pass failed (out of memory). Sets j->status, and
     * j->answer/j->answer_len (malloc'd). */
    void (*render)(job *j, const nn_answer *answers);
    /* The job is finished (answer or error set): hand it back to its
     * connection. Called exactly once, on a worker, or on the offering
     * thread when the queue is stopped. The job belongs to the callee. */
    void (*done)(job *j);
} job_ops;

struct job {
    const job_ops *ops;
    served_model *model;      /* a reference the job owns */
    char model_name[64];      /* its repository name and version, for metrics */
    uint64_t model_version;
    struct timespec deadline; /* CLOCK_MONOTONIC: not started after this */
    void *user;               /* the maker's context (request, connection) */
    /* filled by parse */
    float *inputs; /* (n_inputs, 784) */
    int n_inputs;
    /* filled by render or on error */
    int status;
    char message[256];
    char *answer;             /* the body to send, whatever the status; NULL:
                                 an error body is made from message */
    size_t answer_len;
    const char *content_type; /* of answer; NULL: application/json */
    int per_digit[10]; /* answers per digit, for /metrics */
    /* The maker's word that parsing costs little whatever the body holds
     * (a short JSON body), so the job may run on the offering thread; its
     * parse then sees `here` and must refuse, with tighter limits, what
     * would take long (it then runs on a worker after all). */
    bool small, here;
    int batch_size; /* inputs in the forward pass this job was part of */
    job *next;      /* queue link, the queue's own */
};

typedef struct {
    int workers;         /* threads, >= 1 */
    int capacity;        /* jobs waiting at most, >= 1 */
    int max_batch;       /* inputs per forward pass, >= 1 */
    long max_wait_us;    /* longest wait for more jobs, 0 = take what is queued */
    int nice;            /* added to the workers' nice value (Linux, per thread) */
    bool int8;           /* run models with an int8 calibration in int8 */
    /* work_queue_run_here takes small jobs of models of at most this many
     * multiply-adds an input (nn_net_macs); 0: every job is queued */
    uint64_t inline_max_macs;
} work_queue_config;

typedef struct work_queue work_queue;

/* Statistics for /metrics: batch sizes formed, by size 1..WQ_HIST. */
#define WQ_HIST 64
typedef struct {
    atomic_uint_fast64_t batches[WQ_HIST + 1]; /* [k]: forward passes over k inputs; [WQ_HIST] more */
    atomic_uint_fast64_t jobs_done, jobs_refused_full, jobs_expired;
    atomic_uint_fast64_t jobs_inline; /* run by work_queue_run_here */
    atomic_int depth;  /* jobs waiting now */
    atomic_int busy;   /* workers running a batch now */
} work_queue_stats;

/* Copies msg into j->message, cut to fit. */
void job_set_message(job *j, const char *msg);

/* Sets j->deadline to now + ms (CLOCK_MONOTONIC). */
void job_set_deadline(job *j, unsigned ms);

/* Starts the workers. Returns NULL with err (threads, memory). */
work_queue *work_queue_start(const work_queue_config *cfg, nn_error *err);

/* Offers j to the queue. Returns 0 (a worker will call j->ops->done), or
 * -1 when the queue is full or stopping (j is untouched; the caller keeps
 * it and answers 503). */
int work_queue_offer(work_queue *q, job *j);

/* Runs j on the calling thread as a batch of its own, when j->small and
 * its model costs at most inline_max_macs an input and its parse (with
 * j->here set) succeeds: returns 0, and j->ops->done has been called
 * before the return. Otherwise returns -1 and j is as it was, to be
 * offered. */
int work_queue_run_here(work_queue *q, job *j);

const work_queue_stats *work_queue_statistics(const work_queue *q);

/* The int8 form the workers run m in (cfg.int8 and m calibrated), or
 * NULL: float32. */
const nn_qnet *work_queue_qnet(const work_queue *q, served_model *m);

/* Stops taking jobs (later offers fail), lets the workers finish every
 * queued one (each gets its done call) and joins them. q stays valid
 * for offers (which fail) until work_queue_free. */
void work_queue_stop(work_queue *q);
void work_queue_free(work_queue *q);

#endif
