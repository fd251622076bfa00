// The CUDA backend behind the Backend op interface: weights copied to the GPU once (MXFP4 experts
// kept packed), activations and KV cache in device memory, every op a kernel on one stream. The model
// code (model/forward.h) runs on it unchanged; the fused, graph-captured decode path is DecodeEngine
// (decode_engine.h), which shares these kernels.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace gptoss {

// Fails with a clear message when no usable GPU is present.
Expected<std::unique_ptr<Backend>> make_cuda_backend(int device = 0);

// Number of CUDA devices usable here (0 when there is no driver or GPU).
int cuda_device_count();

// Free and total memory of CUDA device `device` (cudaMemGetInfo), and its name; false when it cannot
// be asked (no such device, no driver).
bool cuda_memory_info(int device, size_t* free_bytes, size_t* total_bytes, std::string* name);

}  // namespace gptoss
