// hf_cache.hpp: `--model ORG/NAME` resolved to a snapshot already in the Hugging Face cache.
//
// The cache layout is huggingface_hub's: <cache>/models--ORG--NAME/refs/<ref> holds a commit
// hash, and <cache>/models--ORG--NAME/snapshots/<hash>/ holds the repository's files (symbolic
// links into blobs/). infllm never downloads: a snapshot that is not there is an error naming
// every folder searched.
#pragma once

#include <string>
#include <vector>

namespace infllm::model {

// The cache folders searched, in order, without duplicates: $HF_HUB_CACHE, $HF_HOME/hub, and
// the default ($XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub).
std::vector<std::string> hf_cache_folders();

// True when `given` has the shape of a repository id: ORG/NAME, optionally @REVISION (a ref
// such as `main`, or a commit hash), with the characters the Hub allows.
bool looks_like_repo_id(const std::string& given);

// `given` itself when it names an existing file or directory; otherwise, for a repository id,
// the model in its snapshot: the snapshot folder when it has config.json, else its one .gguf
// file. Throws InputError(given, ...) naming the folders searched, the snapshot's missing ref,
// or the several .gguf files to choose from.
std::string resolve_model_path(const std::string& given);

}  // namespace infllm::model
