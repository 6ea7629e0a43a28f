/* work_queue.c: see work_queue.h.
 *
 * One mutex guards the list of waiting jobs. The lock is held only to
 * link and unlink jobs: decoding, the forward pass and rendering run
 * unlocked.
 *
 * Workers sleep on a counting semaphore, `ready`: one token per job
 * linked (posted after the link, taken before the unlink, so a worker
 * holding a token always finds a job), plus one per worker at stop. Not a
 * condition variable: glibc's pthread_cond_signal can itself sleep until
 * the waiters it woke earlier have left the wait (its group switch), and
 * the signaller is the HTTP thread, whose connections all stall while it
 * sleeps: 6.3k such sleeps in 3 s of the MLP's JSON load at 40k req/s
 * (`perf record -e sched:sched_switch` on that thread). sem_post never
 * waits.
 *
 * Every worker takes a job as soon as one is queued. (Until 2026-12-03
 * all workers but the first slept until jobs waited more than 1 ms; on a
 * Zen 4 machine, whose int8 CNN takes 64 µs an image, that left a core
 * 25% idle while one worker was saturated: bench/README, "Every worker
 * serves", has the measurements.) */
/* gettid (for the per-thread nice value) needs _GNU_SOURCE: CMake defines it */
#include "work_queue.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

struct work_queue {
    work_queue_config cfg;
    pthread_mutex_t lock;
    sem_t ready; /* one token per job linked, one per worker at stop */
    job *head, *tail;
    int depth;
    atomic_bool stopping;
    pthread_t *threads;
    int n_threads;
    work_queue_stats stats;
};

static struct timespec now_mono(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static bool passed(const struct timespec *deadline, const struct timespec *now) {
    return now->tv_sec > deadline->tv_sec ||
           (now->tv_sec == deadline->tv_sec && now->tv_nsec >= deadline->tv_nsec);
}

static void add_us(struct timespec *t, long us) {
    t->tv_sec += us / 1000000;
    t->tv_nsec += (us % 1000000) * 1000;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000L;
    }
}

/* Unlinks the oldest job; the lock is held. */
static job *pop_locked(work_queue *q) {
    job *j = q->head;
    if (!j) return NULL;
    q->head = j->next;
    if (!q->head) q->tail = NULL;
    j->next = NULL;
    q->depth--;
    atomic_store(&q->stats.depth, q->depth);
    return j;
}

static void finish(work_queue *q, job *j) {
    free(j->inputs);
    j->inputs = NULL;
    atomic_fetch_add_explicit(&q->stats.jobs_done, 1, memory_order_relaxed);
    j->ops->done(j);
}

void job_set_message(job *j, const char *msg) {
    size_t n = strnlen(msg, sizeof j->message - 1);
    memcpy(j->message, msg, n);
    j->message[n] = '\0';
}

static void fail_job(job *j, int status, const char *msg) {
    j->status = status;
    job_set_message(j, msg);
}

/* Parses j; a job past its deadline is refused without being looked at.
 * Returns 0 when it has inputs to run, else -1 (it is finished). */
static int prepare(work_queue *q, job *j) {
    struct timespec t = now_mono();
    if (passed(&j->deadline, &t)) {
        atomic_fetch_add_explicit(&q->stats.jobs_expired, 1, memory_order_relaxed);
        fail_job(j, 503, "the server is too busy to answer in time; try again later");
        finish(q, j);
        return -1;
    }
    if (j->ops->parse(j) != 0 || j->n_inputs == 0) {
        finish(q, j);
        return -1;
    }
    return 0;
}

/* Runs one forward pass over the inputs of jobs[0..n) (all the same
 * model) and renders each. */
static void run_batch(work_queue *q, job **jobs, int n, int rows) {
    float *x = NULL;
    nn_answer *answers = malloc((size_t)rows * sizeof *answers);
    bool ok = answers != NULL;
    const float *in = jobs[0]->inputs;
    if (ok && n > 1) {
        /* (rows, 784): the jobs' inputs one after the other */
        x = malloc((size_t)rows * NN_PIXELS * sizeof *x);
        ok = x != NULL;
        for (int i = 0, r = 0; ok && i < n; r += jobs[i]->n_inputs, i++)
            memcpy(x + (size_t)r * NN_PIXELS, jobs[i]->inputs,
                   (size_t)jobs[i]->n_inputs * NN_PIXELS * sizeof *x);
        in = x;
    }
    nn_error err;
    served_model *m = jobs[0]->model;
    const nn_qnet *qn = work_queue_qnet(q, m);
    if (ok && qn) ok = nn_qnet_classify(qn, m->net, in, rows, answers, 1, &err) == 0;
    else if (ok) ok = nn_classify(m->net, in, rows, answers, 1, &err) == 0;
    free(x);
    int hist = rows < WQ_HIST ? rows : WQ_HIST;
    atomic_fetch_add_explicit(&q->stats.batches[hist], 1, memory_order_relaxed);
    /* Render every answer first, then hand the jobs back in a row: each
     * hand-back wakes the connection's HTTP thread, and one wake-up then
     * finds the whole batch ready instead of one answer per wake-up
     * (interleaved, the thread woke up to once per job). */
    for (int i = 0, r = 0; i < n; r += jobs[i]->n_inputs, i++) {
        jobs[i]->batch_size = rows;
        jobs[i]->ops->render(jobs[i], ok ? answers + r : NULL);
    }
    free(answers);
    /* finish() hands a job back to its connection, which may free it at once */
    for (int i = 0; i < n; i++) finish(q, jobs[i]);
}

static void *worker(void *arg) {
    work_queue *q = arg;
#ifdef __linux__
    /* Lower priority than the HTTP threads, so /healthz and /metrics stay
     * quick while every worker is busy (Linux applies nice per thread). */
    if (q->cfg.nice) {
        errno = 0;
        int cur = getpriority(PRIO_PROCESS, (id_t)gettid());
        if (errno == 0) setpriority(PRIO_PROCESS, (id_t)gettid(), cur + q->cfg.nice);
    }
#endif
    job **batch = calloc((size_t)q->cfg.max_batch, sizeof *batch);
    if (!batch) return NULL;
    for (;;) {
        while (sem_wait(&q->ready) != 0) continue; /* EINTR */
        pthread_mutex_lock(&q->lock);
        job *first = pop_locked(q);
        if (first) atomic_fetch_add(&q->stats.busy, 1);
        pthread_mutex_unlock(&q->lock);
        if (!first) break; /* a stop token, and nothing left */
        int n = 0, rows = 0;
        if (prepare(q, first) == 0) {
            batch[n++] = first;
            rows = first->n_inputs;
        }
        /* Gather: jobs already waiting are taken at once; when none is,
         * wait for one until max_wait_us after the first was taken. */
        struct timespec until = now_mono();
        add_us(&until, q->cfg.max_wait_us);
        while (n > 0 && n < q->cfg.max_batch && rows < q->cfg.max_batch) {
            if (sem_trywait(&q->ready) != 0) {
                if (q->cfg.max_wait_us <= 0 || atomic_load(&q->stopping)) break;
                if (sem_clockwait(&q->ready, CLOCK_MONOTONIC, &until) != 0) {
                    if (errno == EINTR) continue;
                    break; /* ETIMEDOUT */
                }
            }
            pthread_mutex_lock(&q->lock);
            job *next = q->head;
            /* another model (next batch) or a stop token: the token goes
             * back, for another worker or for this one's next turn */
            if (!next || next->model != first->model) {
                pthread_mutex_unlock(&q->lock);
                sem_post(&q->ready);
                break;
            }
            pop_locked(q);
            pthread_mutex_unlock(&q->lock);
            if (prepare(q, next) == 0) {
                if (next->model == first->model) {
                    batch[n++] = next;
                    rows += next->n_inputs;
                } else { /* its parse moved it to another model (a reload) */
                    run_batch(q, &next, 1, next->n_inputs);
                }
            }
        }
        if (n > 0) run_batch(q, batch, n, rows);
        atomic_fetch_sub(&q->stats.busy, 1);
    }
    free(batch);
    return NULL;
}

void job_set_deadline(job *j, unsigned ms) {
    clock_gettime(CLOCK_MONOTONIC, &j->deadline);
    add_us(&j->deadline, (long)ms * 1000);
}

work_queue *work_queue_start(const work_queue_config *cfg, nn_error *err) {
    work_queue *q = calloc(1, sizeof *q);
    if (!q) {
        nn_fail(err, "out of memory");
        return NULL;
    }
    q->cfg = *cfg;
    if (q->cfg.workers < 1) q->cfg.workers = 1;
    if (q->cfg.capacity < 1) q->cfg.capacity = 1;
    if (q->cfg.max_batch < 1) q->cfg.max_batch = 1;
    pthread_mutex_init(&q->lock, NULL);
    sem_init(&q->ready, 0, 0);
    q->threads = calloc((size_t)q->cfg.workers, sizeof *q->threads);
    if (!q->threads) {
        nn_fail(err, "out of memory");
        work_queue_free(q);
        return NULL;
    }
    for (int i = 0; i < q->cfg.workers; i++) {
        int rc = pthread_create(&q->threads[i], NULL, worker, q);
        if (rc != 0) {
            nn_fail(err, "cannot start inference worker %d: %s", i + 1, strerror(rc));
            work_queue_free(q);
            return NULL;
        }
        q->n_threads++;
    }
    return q;
}

int work_queue_offer(work_queue *q, job *j) {
    pthread_mutex_lock(&q->lock);
    if (atomic_load(&q->stopping) || q->depth >= q->cfg.capacity) {
        pthread_mutex_unlock(&q->lock);
        atomic_fetch_add_explicit(&q->stats.jobs_refused_full, 1, memory_order_relaxed);
        return -1;
    }
    j->next = NULL;
    if (q->tail) q->tail->next = j;
    else q->head = j;
    q->tail = j;
    q->depth++;
    atomic_store(&q->stats.depth, q->depth);
    pthread_mutex_unlock(&q->lock);
    /* after the unlock: a worker woken while the lock is still held would
     * at once sleep again on it (a futex wait and a wake more per job) */
    sem_post(&q->ready);
    return 0;
}

int work_queue_run_here(work_queue *q, job *j) {
    if (!j->small || atomic_load(&q->stopping) ||
        nn_net_macs(j->model->net) > q->cfg.inline_max_macs)
        return -1;
    j->here = true;
    if (j->ops->parse(j) != 0 || j->n_inputs == 0) {
        /* refused here (too big for this thread, or wrong): a worker
         * parses it again with the full limits and gives the answer */
        free(j->inputs);
        free(j->answer);
        j->inputs = NULL;
        j->answer = NULL;
        j->n_inputs = 0;
        j->answer_len = 0;
        j->content_type = NULL;
        j->status = 0;
        j->message[0] = '\0';
        j->here = false;
        return -1;
    }
    atomic_fetch_add_explicit(&q->stats.jobs_inline, 1, memory_order_relaxed);
    run_batch(q, &j, 1, j->n_inputs);
    return 0;
}

const work_queue_stats *work_queue_statistics(const work_queue *q) { return &q->stats; }

const nn_qnet *work_queue_qnet(const work_queue *q, served_model *m) {
    return q->cfg.int8 ? served_model_qnet(m) : NULL;
}

void work_queue_stop(work_queue *q) {
    if (!q) return;
    pthread_mutex_lock(&q->lock); /* no job is linked after this */
    atomic_store(&q->stopping, true);
    pthread_mutex_unlock(&q->lock);
    /* each worker leaves on its first token that finds the list empty */
    for (int i = 0; i < q->n_threads; i++) sem_post(&q->ready);
    for (int i = 0; i < q->n_threads; i++) pthread_join(q->threads[i], NULL);
    q->n_threads = 0;
}

void work_queue_free(work_queue *q) {
    if (!q) return;
    work_queue_stop(q);
    free(q->threads);
    sem_destroy(&q->ready);
    pthread_mutex_destroy(&q->lock);
    free(q);
}
