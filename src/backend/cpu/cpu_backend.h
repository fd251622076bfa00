// The exact cpu backend: f32 activations and KV, weights read in place from the file mapping and
// decoded exactly. It is the oracle every fast kernel is compared with.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace gptoss {

// threads <= 0: one per hardware thread.
std::unique_ptr<Backend> make_cpu_backend(int threads = 0);

}  // namespace gptoss
