// What a Hugging Face hub (or a mirror, a proxy, a corrupt cache) can send `gptoss pull`: the
// /tree listing pages, the /revision answer, the Link header, a size header, and the
// trees/{commit}.json cache file; and the user's repo reference (org/name@revision), which names
// cache folders. Any bytes give a value or an error with a message; never a crash. The first byte
// picks the parser.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "fuzz_util.h"
#include "hub/hf_cache.h"
#include "hub/pull.h"

namespace hub = gptoss::hub;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int which = data[0] % 6;
  std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (which) {
    case 0: {
      auto r = hub::parse_tree_page(text);
      gptoss::fuzz::require_message(r);
      break;
    }
    case 1: {
      auto r = hub::parse_revision_info(text);
      gptoss::fuzz::require_message(r);
      break;
    }
    case 2: {
      // The next URL is what stood between '<' and '>' in the header.
      std::string url = hub::next_page_url(text);
      if (!url.empty() && text.find("<" + url + ">") == std::string::npos) std::abort();
      break;
    }
    case 3: {
      // The cache file reads back the same after huggingface_hub's writer writes what was read.
      auto r = hub::parse_tree_cache_json(text);
      gptoss::fuzz::require_message(r);
      if (r) {
        auto again = hub::parse_tree_cache_json(hub::tree_cache_json(*r));
        if (!again || again->size() != r->size()) std::abort();
      }
      break;
    }
    case 4: {
      auto r = hub::parse_u64(text, "size header");
      gptoss::fuzz::require_message(r);
      if (r && std::to_string(*r) != text.substr(text.find_first_not_of('0') == std::string::npos
                                                     ? (text.empty() ? 0 : text.size() - 1)
                                                     : text.find_first_not_of('0')))
        std::abort();  // the value is the decimal number written (leading zeros aside)
      break;
    }
    case 5: {
      // An accepted reference stays one folder inside the cache: models--org--name, refs/<rev>.
      auto r = hub::parse_repo_ref(text);
      gptoss::fuzz::require_message(r);
      if (r) {
        const std::string folder = hub::repo_folder_name(r->repo_id);
        if (folder.find('/') != std::string::npos || folder.find("..") != std::string::npos)
          std::abort();
        if (r->revision.empty() || r->revision.find("..") != std::string::npos) std::abort();
      }
      break;
    }
  }
  return 0;
}
