// Multi-tensor optimizer steps: one call updates every parameter of a group, split into chunks across threads.
// Each update is the same arithmetic as the per-parameter loops of src/optim/*.ts (double intermediates, values
// stored as float after each PyTorch op), which stay as the oracle and the path for other devices and dtypes.
//
// Legend: T tensors; for tensor t: w weights, g gradient, state buffers (b momentum, m1/m2 Adam moments, mu LARS
//   momentum), n[t] elements; chunks of kChunk elements are the unit of work handed to threads.

#include <cmath>

#include "kernels.h"

// No fused multiply-adds: each product and sum rounds in double as the JavaScript loops' do, so both paths give the
// same bits (AdamW turns a last-bit difference in a zero-mean gradient, like a key bias's, into a +-lr update).
#pragma GCC optimize("fp-contract=off")

namespace selfsup {

namespace {

constexpr int64_t kChunk = 1 << 14;

struct Chunk {
  int64_t t, begin, end;
};

std::vector<Chunk> chunks_of(const std::vector<int64_t>& n) {
  std::vector<Chunk> out;
  for (int64_t t = 0; t < int64_t(n.size()); t++)
    for (int64_t b = 0; b < n[t]; b += kChunk) out.push_back({t, b, std::min(n[t], b + kChunk)});
  return out;
}

template <class F>
void for_chunks(const std::vector<int64_t>& n, F f) {
  const std::vector<Chunk> cs = chunks_of(n);
  int64_t total = 0;
  for (int64_t v : n) total += v;
  const int64_t nc = int64_t(cs.size());
  if (total < kParallelThreshold || omp_get_max_threads() < 2) {
    for (const Chunk& c : cs) f(c);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < nc; i++) f(cs[i]);
}

}  // namespace

void sgd_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& b,
              const std::vector<uint8_t>& first, const std::vector<int64_t>& n, double lr, double momentum,
              double dampening, double wd, bool nesterov) {
  const double keep = 1 - dampening;
  for_chunks(n, [&](const Chunk& c) {
    float* W = w[c.t];
    const float* G = g[c.t];
    float* B = b[c.t];
    if (momentum == 0 || B == nullptr) {
      for (int64_t i = c.begin; i < c.end; i++) W[i] = float(W[i] - lr * (G[i] + wd * W[i]));
      return;
    }
    if (first[c.t]) {  // the buffer starts as the first decayed gradient, undampened
      for (int64_t i = c.begin; i < c.end; i++) B[i] = float(G[i] + wd * W[i]);
      if (nesterov)
        for (int64_t i = c.begin; i < c.end; i++) W[i] = float(W[i] - lr * (B[i] + momentum * B[i]));
      else
        for (int64_t i = c.begin; i < c.end; i++) W[i] = float(W[i] - lr * B[i]);
      return;
    }
    if (nesterov) {
      for (int64_t i = c.begin; i < c.end; i++) {
        const double d = G[i] + wd * W[i];
        B[i] = float(momentum * B[i] + keep * d);
        W[i] = float(W[i] - lr * (d + momentum * B[i]));
      }
    } else {
      for (int64_t i = c.begin; i < c.end; i++) {
        B[i] = float(momentum * B[i] + keep * (G[i] + wd * W[i]));
        W[i] = float(W[i] - lr * B[i]);
      }
    }
  });
}

void adamw_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& m1,
                const std::vector<float*>& m2, const std::vector<double>& stepSize,
                const std::vector<double>& bc2Sqrt, const std::vector<int64_t>& n, double decay, double beta1,
                double beta2, double eps) {
  const double c1 = 1 - beta1, c2 = 1 - beta2;
  for_chunks(n, [&](const Chunk& c) {
    float* W = w[c.t];
    const float* G = g[c.t];
    float* M = m1[c.t];
    float* V = m2[c.t];
    const double s = stepSize[c.t], bc = bc2Sqrt[c.t];
    for (int64_t i = c.begin; i < c.end; i++) {
      const double gi = G[i];
      M[i] = float(beta1 * M[i] + c1 * gi);
      V[i] = float(beta2 * V[i] + c2 * gi * gi);
      const double denom = std::sqrt(double(V[i])) / bc + eps;
      W[i] = float(W[i] * decay);  // rounded first, as PyTorch's in-place mul_
      W[i] = float(W[i] - s * (M[i] / denom));
    }
  });
}

void lars_step(const std::vector<float*>& w, const std::vector<const float*>& g, const std::vector<float*>& mu,
               const std::vector<uint8_t>& adapt, const std::vector<int64_t>& n, double lr, double momentum,
               double wd, double trust) {
  const int64_t T = int64_t(n.size());
  std::vector<double> q(size_t(T), 1.0);
  // trust ratios first: per tensor, ||w|| and ||g + wd w|| (the official code's where: 1 unless both are positive)
#pragma omp parallel for schedule(dynamic, 1) if (T > 1)
  for (int64_t t = 0; t < T; t++) {
    if (!adapt[t]) continue;
    double wSq = 0, uSq = 0;
    for (int64_t i = 0; i < n[t]; i++) {
      const double wi = w[t][i], u = g[t][i] + wd * wi;
      wSq += wi * wi;
      uSq += u * u;
    }
    const double wNorm = std::sqrt(wSq), uNorm = std::sqrt(uSq);
    if (wNorm > 0 && uNorm > 0) q[size_t(t)] = trust * wNorm / uNorm;
  }
  for_chunks(n, [&](const Chunk& c) {
    float* W = w[c.t];
    const float* G = g[c.t];
    float* MU = mu[c.t];
    if (adapt[c.t]) {
      const double qt = q[size_t(c.t)];
      for (int64_t i = c.begin; i < c.end; i++) {
        MU[i] = float(momentum * MU[i] + (G[i] + wd * W[i]) * qt);
        W[i] = float(W[i] - lr * MU[i]);
      }
    } else {
      for (int64_t i = c.begin; i < c.end; i++) {
        MU[i] = float(momentum * MU[i] + G[i]);
        W[i] = float(W[i] - lr * MU[i]);
      }
    }
  });
}

}  // namespace selfsup

namespace selfsup {

void ema_update(const std::vector<float*>& k, const std::vector<const float*>& q, const std::vector<int64_t>& n,
                double momentum) {
  // float arithmetic, each product and the sum rounded, as MoCo's k * m + q * (1 - m) in separate ops
  const float m = float(momentum), rest = float(1 - momentum);
  for_chunks(n, [&](const Chunk& c) {
    float* K = k[c.t];
    const float* Q = q[c.t];
    for (int64_t i = c.begin; i < c.end; i++) {
      const float a = K[i] * m, b = Q[i] * rest;
      K[i] = a + b;
    }
  });
}

}  // namespace selfsup
