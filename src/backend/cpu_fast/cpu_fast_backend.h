// The "cpu-fast" backend: the exact cpu backend with its hot ops (bf16 matmul/GEMV for attention,
// router and unembedding; the MXFP4 expert matmuls) replaced by SIMD kernels chosen at run time.
// Weights decode to the same values as on the exact path; only f32 summation order differs, so its
// logits stay within a small KL divergence of the exact path's (tests/py/test_cpu_fast.py).
#pragma once

#include <memory>

#include "backend/backend.h"

namespace gptoss {

// threads <= 0: one per hardware thread.
std::unique_ptr<Backend> make_cpu_fast_backend(int threads = 0);

// Runs the fast matmul and expert ops once on small fixed inputs (decode and batch shapes) against
// the exact backend on this machine's SIMD target; true when every output is within the summation-
// order tolerance. Computed once, then cached. The engine's "auto" device uses cpu-fast only then.
bool cpu_fast_self_check();

}  // namespace gptoss
