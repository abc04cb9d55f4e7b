// A plain-C libnng peer: the baseline that starling-bench compares the Swift layer against.
// Same pattern as the Swift side: REP server with N contexts, REQ client(s), echo bodies.
//
//   nng_peer serve URL CONTEXTS          echo server (runs until killed)
//   nng_peer rtt URL BYTES ITERATIONS    one outstanding request; prints "p50_us p99_us"
//   nng_peer concurrent URL CONTEXTS SECONDS   prints "requests_per_second"
//   nng_peer large URL BYTES ITERATIONS  prints "gigabytes_per_second" (both directions)
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, int rv) {
    fprintf(stderr, "nng_peer: %s: %s\n", what, nng_strerror(rv));
    exit(1);
}

static double now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

enum state { RECV, SEND };
struct server_work { enum state state; nng_aio *aio; nng_ctx ctx; };

static void server_cb(void *arg) {
    struct server_work *w = arg;
    int rv = nng_aio_result(w->aio);
    if (rv == NNG_ECLOSED) return;
    if (w->state == RECV && rv == 0) {
        w->state = SEND;
        nng_ctx_send(w->ctx, w->aio); // echo: the received message is still in the aio
        return;
    }
    if (w->state == SEND && rv != 0) nng_msg_free(nng_aio_get_msg(w->aio));
    w->state = RECV;
    nng_ctx_recv(w->ctx, w->aio);
}

static void serve(const char *url, int contexts) {
    nng_socket s;
    int rv;
    if ((rv = nng_rep0_open(&s)) != 0) die("rep open", rv);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 256u << 20);
    struct server_work *work = calloc(contexts, sizeof *work);
    for (int i = 0; i < contexts; i++) {
        if ((rv = nng_aio_alloc(&work[i].aio, server_cb, &work[i])) != 0) die("aio", rv);
        if ((rv = nng_ctx_open(&work[i].ctx, s)) != 0) die("ctx", rv);
    }
    if ((rv = nng_listen(s, url, NULL, 0)) != 0) die("listen", rv);
    for (int i = 0; i < contexts; i++) { work[i].state = RECV; nng_ctx_recv(work[i].ctx, work[i].aio); }
    printf("ready\n");
    fflush(stdout);
    for (;;) pause();
}

static nng_socket client(const char *url) {
    nng_socket s;
    int rv;
    if ((rv = nng_req0_open(&s)) != 0) die("req open", rv);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
    nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, 256u << 20);
    for (int attempt = 0; (rv = nng_dial(s, url, NULL, 0)) != 0; attempt++) {
        if (attempt > 500) die("dial", rv);
        usleep(10000);
    }
    return s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void roundtrip(nng_socket s, size_t bytes) {
    nng_msg *m;
    int rv;
    if ((rv = nng_msg_alloc(&m, bytes)) != 0) die("msg", rv);
    memset(nng_msg_body(m), 7, bytes);
    if ((rv = nng_sendmsg(s, m, 0)) != 0) die("send", rv);
    if ((rv = nng_recvmsg(s, &m, 0)) != 0) die("recv", rv);
    nng_msg_free(m);
}

static void rtt(const char *url, size_t bytes, int iterations) {
    nng_socket s = client(url);
    double *samples = malloc(sizeof(double) * iterations);
    for (int i = 0; i < 200; i++) roundtrip(s, bytes); // warm up
    for (int i = 0; i < iterations; i++) {
        double t0 = now_us();
        roundtrip(s, bytes);
        samples[i] = now_us() - t0;
    }
    qsort(samples, iterations, sizeof(double), cmp_double);
    printf("%.1f %.1f\n", samples[iterations / 2], samples[(int)(iterations * 0.99)]);
}

static atomic_long completed;
static atomic_int running = 1;
struct client_work { nng_aio *aio; nng_ctx ctx; enum state state; };

static void client_send(struct client_work *w) {
    nng_msg *m;
    nng_msg_alloc(&m, 64);
    memset(nng_msg_body(m), 7, 64);
    nng_aio_set_msg(w->aio, m);
    w->state = SEND;
    nng_ctx_send(w->ctx, w->aio);
}

static void client_cb(void *arg) {
    struct client_work *w = arg;
    int rv = nng_aio_result(w->aio);
    if (rv != 0) {
        if (w->state == SEND) nng_msg_free(nng_aio_get_msg(w->aio));
        return;
    }
    if (w->state == SEND) {
        w->state = RECV;
        nng_ctx_recv(w->ctx, w->aio);
        return;
    }
    nng_msg_free(nng_aio_get_msg(w->aio));
    atomic_fetch_add(&completed, 1);
    if (atomic_load(&running)) client_send(w);
}

static void concurrent(const char *url, int contexts, double seconds) {
    nng_socket s = client(url);
    struct client_work *work = calloc(contexts, sizeof *work);
    for (int i = 0; i < contexts; i++) {
        nng_aio_alloc(&work[i].aio, client_cb, &work[i]);
        nng_ctx_open(&work[i].ctx, s);
    }
    for (int i = 0; i < contexts; i++) client_send(&work[i]);
    usleep(300000); // warm up
    long before = atomic_load(&completed);
    double t0 = now_us();
    usleep((useconds_t)(seconds * 1e6));
    long after = atomic_load(&completed);
    double elapsed = (now_us() - t0) / 1e6;
    atomic_store(&running, 0);
    printf("%.0f\n", (after - before) / elapsed);
    fflush(stdout);
    _exit(0);
}

static void large(const char *url, size_t bytes, int iterations) {
    nng_socket s = client(url);
    roundtrip(s, bytes); // warm up
    double t0 = now_us();
    for (int i = 0; i < iterations; i++) roundtrip(s, bytes);
    double seconds = (now_us() - t0) / 1e6;
    printf("%.3f\n", 2.0 * bytes * iterations / seconds / 1e9);
}

int main(int argc, char **argv) {
    if (argc >= 4 && strcmp(argv[1], "serve") == 0) serve(argv[2], atoi(argv[3]));
    else if (argc >= 5 && strcmp(argv[1], "rtt") == 0) rtt(argv[2], (size_t)atol(argv[3]), atoi(argv[4]));
    else if (argc >= 5 && strcmp(argv[1], "concurrent") == 0) concurrent(argv[2], atoi(argv[3]), atof(argv[4]));
    else if (argc >= 5 && strcmp(argv[1], "large") == 0) large(argv[2], (size_t)atol(argv[3]), atoi(argv[4]));
    else {
        fprintf(stderr, "usage: nng_peer serve URL CONTEXTS | rtt URL BYTES N | concurrent URL CONTEXTS SECONDS | large URL BYTES N\n");
        return 2;
    }
    return 0;
}
