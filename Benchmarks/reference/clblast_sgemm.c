/*
 * Reference SGEMM benchmark: CLBlast on an OpenCL device (e.g. PoCL CPU).
 *
 *   clblast_sgemm [--json] [n ...]        (default sizes: 1024 2048)
 *   REF_DEVICE=<i>  index over all devices of all platforms (default 0)
 *
 * For each n: C = A * B (row-major, n x n, no transpose, alpha 1, beta 0).
 * One untimed warm-up call (CLBlast compiles its kernels on first use), then
 * repeated timed calls (clFinish after each) until >= 1 s and >= 3 reps.
 * Reports the median wall time per call and GFLOP/s = 2 n^3 / ms / 1e6.
 * A few random entries of C are checked against a CPU dot product.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEVICES 64
#define MIN_REPS 3
#define MAX_REPS 10000
#define MIN_TOTAL_S 1.0
#define N_CHECK 16
#define TOL 1e-3

static void die(const char *what, long code) {
    fprintf(stderr, "clblast_sgemm: error: %s (status %ld)\n", what, code);
    exit(1);
}

#define CL_CHECK(call)                                                    \
    do {                                                                  \
        cl_int _e = (call);                                               \
        if (_e != CL_SUCCESS) die(#call, (long)_e);                       \
    } while (0)

#define BLAST_CHECK(call)                                                 \
    do {                                                                  \
        CLBlastStatusCode _s = (call);                                    \
        if (_s != CLBlastSuccess) die(#call, (long)_s);                   \
    } while (0)

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* xorshift64* -> float in [0, 1). Positive data avoids cancellation so a
 * relative-error check on individual entries is meaningful. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    unsigned long long r = rng_state * 0x2545F4914F6CDD1DULL;
    return (float)(r >> 40) / (float)(1ULL << 24);
}

/* Print s as a JSON string body (quotes added by caller). */
static void json_str(FILE *f, const char *s) {
    for (; *s; ++s) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

static void trim(char *s) {
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\n')) s[--len] = '\0';
    size_t lead = strspn(s, " ");
    if (lead) memmove(s, s + lead, strlen(s + lead) + 1);
}

int main(int argc, char **argv) {
    int json = 0;
    size_t sizes[64];
    int nsizes = 0;
    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--json") == 0) { json = 1; continue; }
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [--json] [n ...]   (env REF_DEVICE=<index>)\n", argv[0]);
            return 0;
        }
        char *end = NULL;
        long v = strtol(argv[i], &end, 10);
        if (!end || *end != '\0' || v <= 0) {
            fprintf(stderr, "clblast_sgemm: error: bad size '%s'\n", argv[i]);
            return 2;
        }
        if (nsizes == 64) { fprintf(stderr, "clblast_sgemm: error: too many sizes\n"); return 2; }
        sizes[nsizes++] = (size_t)v;
    }
    if (nsizes == 0) { sizes[0] = 1024; sizes[1] = 2048; nsizes = 2; }

    /* ---- device selection: flat index over all devices of all platforms ---- */
    int want = 0;
    const char *env = getenv("REF_DEVICE");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (!end || *end != '\0' || v < 0) {
            fprintf(stderr, "clblast_sgemm: error: bad REF_DEVICE '%s'\n", env);
            return 2;
        }
        want = (int)v;
    }

    cl_uint nplat = 0;
    CL_CHECK(clGetPlatformIDs(0, NULL, &nplat));
    if (nplat == 0) die("no OpenCL platforms", 0);
    cl_platform_id plats[16];
    if (nplat > 16) nplat = 16;
    CL_CHECK(clGetPlatformIDs(nplat, plats, NULL));

    cl_device_id device = NULL;
    int seen = 0;
    for (cl_uint p = 0; p < nplat && !device; ++p) {
        cl_uint nd = 0;
        cl_int e = clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
        if (e == CL_DEVICE_NOT_FOUND || nd == 0) continue;
        if (e != CL_SUCCESS) die("clGetDeviceIDs", e);
        cl_device_id devs[MAX_DEVICES];
        if (nd > MAX_DEVICES) nd = MAX_DEVICES;
        CL_CHECK(clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, nd, devs, NULL));
        if (want < seen + (int)nd) device = devs[want - seen];
        seen += (int)nd;
    }
    if (!device) {
        fprintf(stderr, "clblast_sgemm: error: REF_DEVICE=%d but only %d device(s)\n", want, seen);
        return 1;
    }
    char devname[256] = {0};
    CL_CHECK(clGetDeviceInfo(device, CL_DEVICE_NAME, sizeof devname - 1, devname, NULL));
    trim(devname);

    cl_int err = CL_SUCCESS;
    cl_context ctx = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    if (err != CL_SUCCESS) die("clCreateContext", err);
    cl_command_queue queue = clCreateCommandQueue(ctx, device, 0, &err);
    if (err != CL_SUCCESS) die("clCreateCommandQueue", err);

    for (int s = 0; s < nsizes; ++s) {
        const size_t n = sizes[s];
        const size_t elems = n * n, bytes = elems * sizeof(float);
        float *A = malloc(bytes), *B = malloc(bytes), *C = malloc(bytes);
        if (!A || !B || !C) die("host malloc", 0);
        for (size_t i = 0; i < elems; ++i) A[i] = frand();
        for (size_t i = 0; i < elems; ++i) B[i] = frand();
        memset(C, 0, bytes);

        cl_mem dA = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, A, &err);
        if (err != CL_SUCCESS) die("clCreateBuffer(A)", err);
        cl_mem dB = clCreateBuffer(ctx, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, bytes, B, &err);
        if (err != CL_SUCCESS) die("clCreateBuffer(B)", err);
        cl_mem dC = clCreateBuffer(ctx, CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, bytes, C, &err);
        if (err != CL_SUCCESS) die("clCreateBuffer(C)", err);

#define SGEMM()                                                                  \
        BLAST_CHECK(CLBlastSgemm(CLBlastLayoutRowMajor, CLBlastTransposeNo,      \
                                 CLBlastTransposeNo, n, n, n, 1.0f,              \
                                 dA, 0, n, dB, 0, n, 0.0f, dC, 0, n,             \
                                 &queue, NULL))

        /* warm-up (kernel compilation) */
        double t0 = now_s();
        SGEMM();
        CL_CHECK(clFinish(queue));
        double warm_s = now_s() - t0;
        if (!json)
            fprintf(stderr, "  [n=%zu] warm-up (incl. kernel build) %.2f s\n", n, warm_s);

        double *times = malloc(MAX_REPS * sizeof(double));
        if (!times) die("host malloc", 0);
        int reps = 0;
        double total = 0.0;
        while (reps < MAX_REPS && (reps < MIN_REPS || total < MIN_TOTAL_S)) {
            double a = now_s();
            SGEMM();
            CL_CHECK(clFinish(queue));
            double dt = now_s() - a;
            times[reps++] = dt;
            total += dt;
        }
        qsort(times, (size_t)reps, sizeof(double), cmp_double);
        double med = (reps % 2) ? times[reps / 2]
                                : 0.5 * (times[reps / 2 - 1] + times[reps / 2]);
        double ms = med * 1e3;
        double gflops = 2.0 * (double)n * (double)n * (double)n / ms / 1e6;

        /* correctness: a few random entries vs. a double-precision dot product */
        CL_CHECK(clEnqueueReadBuffer(queue, dC, CL_TRUE, 0, bytes, C, 0, NULL, NULL));
        double worst = 0.0;
        for (int c = 0; c < N_CHECK; ++c) {
            size_t i = (size_t)(frand() * (float)n) % n, j = (size_t)(frand() * (float)n) % n;
            double ref = 0.0;
            for (size_t k = 0; k < n; ++k) ref += (double)A[i * n + k] * (double)B[k * n + j];
            double rel = fabs((double)C[i * n + j] - ref) / (fabs(ref) > 1e-30 ? fabs(ref) : 1e-30);
            if (rel > worst) worst = rel;
            if (!(rel <= TOL))
                fprintf(stderr, "clblast_sgemm: WARNING: n=%zu C[%zu,%zu]=%g expected %g (rel err %.3g)\n",
                        n, i, j, (double)C[i * n + j], ref, rel);
        }

        if (json) {
            printf("{\"impl\":\"clblast\",\"device\":\"");
            json_str(stdout, devname);
            printf("\",\"m\":%zu,\"n\":%zu,\"k\":%zu,\"ms\":%.4f,\"gflops\":%.3f}\n",
                   n, n, n, ms, gflops);
        } else {
            fprintf(stderr, "  [n=%zu] %d reps, max rel err %.2g\n", n, reps, worst);
            printf("clblast device=\"%s\" n=%zu ms=%.3f gflops=%.2f\n", devname, n, ms, gflops);
        }
        fflush(stdout);

        free(times);
        CL_CHECK(clReleaseMemObject(dA));
        CL_CHECK(clReleaseMemObject(dB));
        CL_CHECK(clReleaseMemObject(dC));
        free(A); free(B); free(C);
#undef SGEMM
    }

    CL_CHECK(clReleaseCommandQueue(queue));
    CL_CHECK(clReleaseContext(ctx));
    return 0;
}
