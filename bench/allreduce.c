/* The plain C MPI baseline for npm run bench:dist: in-place MPI_Allreduce (float32, sum) of 1, 16 and 64 MB across
 * the job's ranks; prints one JSON line per size with the median seconds of ITERS calls after WARMUP.
 * Built by bench/dist.ts with mpicc in the same run: mpicc -O2 allreduce.c -o allreduce */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  const int iters = argc > 1 ? atoi(argv[1]) : 20, warmup = 3;
  const int mbs[] = {1, 16, 64};
  for (int s = 0; s < 3; s++) {
    const int n = mbs[s] * 1024 * 1024 / 4;
    float* buf = malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) buf[i] = (float)(rank + 1);
    double* t = malloc(sizeof(double) * iters);
    for (int i = 0; i < warmup + iters; i++) {
      MPI_Barrier(MPI_COMM_WORLD);
      double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      if (i >= warmup) t[i - warmup] = MPI_Wtime() - t0;
    }
    qsort(t, iters, sizeof(double), cmp);
    if (rank == 0) printf("{\"impl\":\"c\",\"mb\":%d,\"ranks\":%d,\"sec\":%.9f}\n", mbs[s], size, t[iters / 2]);
    free(buf);
    free(t);
  }
  MPI_Finalize();
  return 0;
}
