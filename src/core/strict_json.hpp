// strict_json.hpp: parsing JSON from outside (input records, config.json) without guessing:
// a key given twice in one object, and a number outside a double's range, are InputErrors
// naming the file, the record and the key, where nlohmann::json would keep the last duplicate
// or throw an out_of_range error without naming the file.
// NOTE: header-only, so that infllm_core itself does not link nlohmann_json; the layers that
// parse JSON (io, model) do.
#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.hpp"

namespace infllm {

inline nlohmann::json parse_strict_json(std::string_view text, const std::string& file,
                                        const std::string& where) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;  // the keys seen so far in each open object
  std::string duplicate;
  const json::parser_callback_t seen = [&](int, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::object_start) {
      keys.emplace_back();
    } else if (event == json::parse_event_t::object_end) {
      keys.pop_back();
    } else if (event == json::parse_event_t::key && !keys.empty()) {
      if (!keys.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
        duplicate = parsed.get<std::string>();
      }
    }
    return true;
  };
  json out;
  try {
    out = json::parse(text, seen);
  } catch (const json::parse_error& e) {
    throw InputError(file, where, std::string("not JSON: ") + e.what());
  } catch (const json::out_of_range& e) {
    throw InputError(file, where,
                     std::string("a number is outside the range of a double: ") + e.what());
  }
  if (!duplicate.empty()) {
    throw InputError(file, where.empty() ? "key " + duplicate : where + ", key " + duplicate,
                     "appears twice in one object (which one is meant cannot be told)");
  }
  return out;
}

}  // namespace infllm
