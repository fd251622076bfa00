#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

namespace gptoss {

using nlohmann::json;

namespace {

// Largest dimension / element count we accept: keeps every product below 2^62.
constexpr uint64_t kMaxElements = uint64_t{1} << 60;

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string describe_json(const json& j) {
  std::string s = j.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

struct RawTensor {
  TensorView view;
  uint64_t begin = 0;
  uint64_t end = 0;
};

Status parse_entry(const std::string& file, const std::string& name, const json& v,
                   RawTensor* out) {
  if (!v.is_object())
    return Error("{}: tensor '{}': header entry must be an object, got {}", file, name,
                 describe_json(v));
  auto dt = v.find("dtype");
  if (dt == v.end() || !dt->is_string())
    return Error("{}: tensor '{}': missing or non-string \"dtype\"", file, name);
  auto dtype = dtype_from_name(dt->get<std::string>());
  if (!dtype)
    return Error("{}: tensor '{}': unknown or unsupported dtype '{}'", file, name,
                 dt->get<std::string>());
  auto sh = v.find("shape");
  if (sh == v.end() || !sh->is_array())
    return Error("{}: tensor '{}': missing or non-array \"shape\"", file, name);
  uint64_t numel = 1;
  std::vector<int64_t> shape;
  for (const auto& d : *sh) {
    if (!d.is_number_unsigned())
      return Error("{}: tensor '{}': shape {} has a non-integer or negative dimension", file, name,
                   describe_json(*sh));
    uint64_t x = d.get<uint64_t>();
    if (x > kMaxElements || (x != 0 && numel > kMaxElements / x))
      return Error("{}: tensor '{}': shape {} is absurdly large", file, name, describe_json(*sh));
    numel *= x;
    shape.push_back(static_cast<int64_t>(x));
  }
  auto off = v.find("data_offsets");
  if (off == v.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned())
    return Error(
        "{}: tensor '{}': \"data_offsets\" must be [begin, end] with non-negative integers", file,
        name);
  uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
  if (end < begin)
    return Error("{}: tensor '{}': data_offsets [{}, {}] end before begin", file, name, begin, end);
  const uint64_t want = numel * dtype_size(*dtype);
  if (end - begin != want)
    return Error(
        "{}: tensor '{}': data_offsets [{}, {}] hold {} bytes but dtype {} shape {} needs {}", file,
        name, begin, end, end - begin, dtype_name(*dtype), shape_to_string(shape), want);
  out->view.name = name;
  out->view.dtype = *dtype;
  out->view.shape = std::move(shape);
  out->view.nbytes = static_cast<size_t>(want);
  out->view.file = file;
  out->begin = begin;
  out->end = end;
  return Status::ok();
}

}  // namespace

Expected<SafetensorsHeader> parse_safetensors(const uint8_t* data, size_t size,
                                              const std::string& file) {
  if (size < 8)
    return Error("{}: file is {} bytes, too short for a safetensors header (truncated?)", file,
                 size);
  const uint64_t n = read_u64_le(data);
  if (n > kMaxSafetensorsHeaderBytes)
    return Error("{}: header length {} is absurd (limit {}): not a safetensors file or corrupted",
                 file, n, kMaxSafetensorsHeaderBytes);
  if (n > size - 8)
    return Error("{}: header length {} exceeds the {} bytes after the length field (truncated?)",
                 file, n, size - 8);
  if (n < 2) return Error("{}: header length {} is too small for a JSON object", file, n);

  const char* text = reinterpret_cast<const char*>(data + 8);
  std::set<std::string> seen;
  std::string duplicate;
  json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && parsed.is_string()) {
      const auto& k = parsed.get_ref<const std::string&>();
      if (!seen.insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text, text + n, on_event);
  } catch (const json::exception& e) {
    return Error("{}: header is not valid JSON: {}", file, printable(e.what()));
  }
  if (!root.is_object())
    return Error("{}: header must be a JSON object, got {}", file, describe_json(root));
  if (!duplicate.empty()) return Error("{}: header names tensor '{}' twice", file, duplicate);

  SafetensorsHeader header;
  header.data_start = static_cast<size_t>(8 + n);
  const uint64_t buffer = size - header.data_start;
  std::vector<RawTensor> raw;
  raw.reserve(root.size());
  for (auto it = root.begin(); it != root.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) return Error("{}: \"__metadata__\" must be an object", file);
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string())
          return Error("{}: \"__metadata__\" value for '{}' must be a string", file, m.key());
        header.metadata[m.key()] = m->get<std::string>();
      }
      continue;
    }
    RawTensor t;
    GPTOSS_RETURN_IF_ERROR(parse_entry(file, it.key(), *it, &t));
    if (t.end > buffer)
      return Error(
          "{}: tensor '{}': data_offsets [{}, {}] run past the end of the data ({} bytes after the "
          "header; file truncated?)",
          file, t.view.name, t.begin, t.end, buffer);
    raw.push_back(std::move(t));
  }

  // The tensors must tile the data buffer exactly.
  std::sort(raw.begin(), raw.end(), [](const RawTensor& a, const RawTensor& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  const RawTensor* prev = nullptr;
  for (const auto& t : raw) {
    if (t.begin < pos)
      return Error("{}: tensor '{}' [{}, {}) overlaps tensor '{}' [{}, {})", file, t.view.name,
                   t.begin, t.end, prev->view.name, prev->begin, prev->end);
    if (t.begin > pos) {
      if (prev)
        return Error(
            "{}: gap of {} bytes between tensor '{}' (ends at {}) and tensor '{}' (begins "
            "at {})",
            file, t.begin - pos, prev->view.name, pos, t.view.name, t.begin);
      return Error("{}: gap of {} bytes before the first tensor '{}'", file, t.begin, t.view.name);
    }
    pos = t.end;
    prev = &t;
  }
  if (pos != buffer)
    return Error("{}: {} bytes of data after the last tensor end at {} (data buffer is {} bytes)",
                 file, buffer - pos, pos, buffer);

  header.tensors.reserve(raw.size());
  for (auto& t : raw) {
    t.view.data = data + header.data_start + t.begin;
    header.tensors.push_back(std::move(t.view));
  }
  return header;
}

Expected<TensorStore> TensorStore::open(const std::vector<std::string>& files) {
  TensorStore store;
  for (const auto& path : files) {
    GPTOSS_ASSIGN_OR_RETURN(auto map, MappedFile::open(path));
    GPTOSS_ASSIGN_OR_RETURN(auto header, parse_safetensors(map->data(), map->size(), path));
    for (auto& t : header.tensors) {
      auto [it, inserted] = store.by_name_.emplace(t.name, store.tensors_.size());
      if (!inserted)
        return Error("tensor '{}' is in both {} and {}", t.name, store.tensors_[it->second].file,
                     path);
      store.tensors_.push_back(std::move(t));
    }
    store.maps_.push_back(std::move(map));
    store.files_.push_back(path);
  }
  return store;
}

const TensorView* TensorStore::find(std::string_view name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

Expected<const TensorView*> TensorStore::get(std::string_view name, DType dtype,
                                             const std::vector<int64_t>& shape) const {
  const TensorView* t = find(name);
  if (!t) {
    std::string where = files_.size() == 1 ? files_[0] : fmt::format("{} files", files_.size());
    return Error("tensor '{}' not found in the checkpoint ({})", name, where);
  }
  if (t->dtype != dtype || t->shape != shape)
    return Error("{}: tensor '{}' is {} {}, expected {} {}", t->file, name, dtype_name(t->dtype),
                 shape_to_string(t->shape), dtype_name(dtype), shape_to_string(shape));
  return t;
}

int64_t TensorStore::file_offset(const TensorView& t) const {
  for (const auto& m : maps_) {
    const uintptr_t base = reinterpret_cast<uintptr_t>(m->data()),
                    p = reinterpret_cast<uintptr_t>(t.data);
    if (m->data() && p >= base && p - base <= m->size()) return static_cast<int64_t>(p - base);
  }
  return -1;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(by_name_.size());
  for (const auto& [k, v] : by_name_) out.push_back(k);
  return out;
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes;
  return n;
}

}  // namespace gptoss
