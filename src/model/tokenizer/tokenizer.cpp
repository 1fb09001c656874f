// tokenizer.cpp: byte-level BPE tables, encode and decode (see tokenizer.hpp). The file formats
// are parsed in tokenizer_load.cpp.
#include "model/tokenizer/tokenizer.hpp"

#include <algorithm>
#include <queue>

#include "core/errors.hpp"
#include "model/tokenizer/unicode.hpp"

namespace infllm::model {

namespace {

// A vocabulary text's bytes: each character mapped back through the byte alphabet; a text with
// a character outside the alphabet stands for its own UTF-8 bytes (what the Hugging Face
// ByteLevel decoder does, and how added tokens such as <|im_end|> are written).
std::string bytes_of_text(const std::string& text) {
  std::string bytes;
  bytes.reserve(text.size());
  std::size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Char c = decode_utf8(text, pos);
    const int b = c.valid ? unicode_to_byte(c.code_point) : -1;
    if (b < 0) return text;
    bytes += static_cast<char>(b);
    pos += c.length;
  }
  return bytes;
}

bool is_ascii_space(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

constexpr std::string_view kMetaspace = "\u2581";  // "▁", SentencePiece's space

// The byte a SentencePiece byte-fallback token stands for ("<0x41>" -> 0x41), or -1.
int fallback_byte(const std::string& text) {
  if (text.size() != 6 || !text.starts_with("<0x") || text.back() != '>') return -1;
  int value = 0;
  for (std::size_t i = 3; i < 5; ++i) {
    const char c = text[i];
    const int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

// A SentencePiece vocabulary text's bytes: "▁" is a space, a byte token its byte.
std::string sentencepiece_bytes(const std::string& text, bool byte_fallback) {
  if (const int b = byte_fallback ? fallback_byte(text) : -1; b >= 0) {
    return std::string(1, static_cast<char>(b));
  }
  std::string out;
  out.reserve(text.size());
  for (std::size_t pos = 0; pos < text.size();) {
    if (std::string_view(text).substr(pos).starts_with(kMetaspace)) {
      out += ' ';
      pos += kMetaspace.size();
    } else {
      out += text[pos++];
    }
  }
  return out;
}

}  // namespace

Tokenizer::Tokenizer(const Spec& spec, std::string source) : source_(std::move(source)) {
  sentencepiece_ = spec.sentencepiece;
  byte_fallback_ = spec.sentencepiece && spec.byte_fallback;
  std::size_t size = spec.vocab.size();
  for (const auto& a : spec.added) size = std::max(size, static_cast<std::size_t>(a.id) + 1);
  token_text_.resize(size);
  token_bytes_.resize(size);
  special_.assign(size, false);
  byte_id_.fill(-1);
  for (std::size_t id = 0; id < spec.vocab.size(); ++id) {
    const std::string& text = spec.vocab[id];
    if (text.empty()) continue;
    token_text_[id] = text;
    token_bytes_[id] =
        sentencepiece_ ? sentencepiece_bytes(text, byte_fallback_) : bytes_of_text(text);
    if (!id_by_text_.emplace(text, static_cast<TokenId>(id)).second) {
      throw InputError(source_, "vocab", "token '" + text + "' appears twice");
    }
    id_by_bytes_.emplace(token_bytes_[id], static_cast<TokenId>(id));
    if (sentencepiece_) {
      // Only <0xXX> tokens stand for a lone byte in SentencePiece-style vocabularies.
      if (const int b = byte_fallback_ ? fallback_byte(text) : -1; b >= 0) {
        auto& slot = byte_id_[static_cast<std::uint8_t>(b)];
        if (slot < 0) slot = static_cast<TokenId>(id);
      }
    } else if (token_bytes_[id].size() == 1) {
      auto& slot = byte_id_[static_cast<std::uint8_t>(token_bytes_[id][0])];
      if (slot < 0) slot = static_cast<TokenId>(id);
    }
  }
  for (const auto& a : spec.added) {
    if (a.id < 0) throw InputError(source_, "added_tokens", "negative id");
    if (a.content.empty()) throw InputError(source_, "added_tokens", "empty token content");
    token_text_[a.id] = a.content;
    token_bytes_[a.id] = sentencepiece_ ? a.content : bytes_of_text(a.content);
    special_[a.id] = a.special;
    id_by_text_.emplace(a.content, a.id);
    added_.push_back({a.content, a.id, a.lstrip, a.rstrip});
  }
  for (std::uint32_t i = 0; i < added_.size(); ++i) {
    added_by_first_byte_[static_cast<std::uint8_t>(added_[i].content[0])].push_back(i);
  }
  for (auto& list : added_by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](std::uint32_t x, std::uint32_t y) {
      return added_[x].content.size() > added_[y].content.size();
    });
  }
  merges_.reserve(spec.merges.size());
  for (std::size_t rank = 0; rank < spec.merges.size(); ++rank) {
    const auto& [left, right] = spec.merges[rank];
    const auto l = id_by_text_.find(left);
    const auto r = id_by_text_.find(right);
    const auto m = id_by_text_.find(left + right);
    if (l == id_by_text_.end() || r == id_by_text_.end() || m == id_by_text_.end()) {
      throw InputError(source_, "merges[" + std::to_string(rank) + "]",
                       "merge '" + left + " " + right + "' uses a token not in the vocabulary");
    }
    // The first (lowest-rank) occurrence of a pair wins, as in `tokenizers`.
    merges_.emplace(pair_key(l->second, r->second),
                    Merge{static_cast<std::int32_t>(rank), m->second});
  }
  pre_ = spec.pre;
  add_prefix_space_ = spec.add_prefix_space;
  ignore_merges_ = spec.ignore_merges;
  if (spec.unknown_id) check_id(*spec.unknown_id, "unknown token id");
  unknown_id_ = spec.unknown_id;
  for (TokenId id : spec.prefix_ids) check_id(id, "post-processor token id");
  for (TokenId id : spec.suffix_ids) check_id(id, "post-processor token id");
  prefix_ids_ = spec.prefix_ids;
  suffix_ids_ = spec.suffix_ids;
  set_bos_id(spec.bos_id);
  set_eos_id(spec.eos_id);
  prefix_ = spec.prefix;
  split_on_metaspace_ = spec.split_on_metaspace;
  fuse_unk_ = spec.fuse_unk;
  strip_prefix_space_ = spec.strip_prefix_space;
}

void Tokenizer::check_id(TokenId id, const char* what) const {
  if (id < 0 || id >= vocab_size()) {
    throw InputError(source_, what,
                     "id " + std::to_string(id) + " outside the vocabulary of " +
                         std::to_string(vocab_size()) + " tokens");
  }
}

void Tokenizer::set_bos_id(std::optional<TokenId> id) {
  if (id) check_id(*id, "bos token id");
  bos_id_ = id;
}

void Tokenizer::set_eos_id(std::optional<TokenId> id) {
  if (id) check_id(*id, "eos token id");
  eos_id_ = id;
}

const std::string& Tokenizer::token_bytes(TokenId id) const {
  check_id(id, "token id");
  return token_bytes_[id];
}

const std::string& Tokenizer::token_text(TokenId id) const {
  check_id(id, "token id");
  return token_text_[id];
}

std::optional<TokenId> Tokenizer::find_token(std::string_view text) const {
  const auto it = id_by_text_.find(std::string(text));
  if (it == id_by_text_.end()) return std::nullopt;
  return it->second;
}

bool Tokenizer::is_special(TokenId id) const {
  check_id(id, "token id");
  return special_[id];
}

std::vector<TokenId> Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<TokenId> out;
  out.reserve(text.size() / 4 + prefix_ids_.size() + suffix_ids_.size());
  if (options.add_special) out.insert(out.end(), prefix_ids_.begin(), prefix_ids_.end());
  std::unordered_map<std::string_view, std::vector<TokenId>> cache;
  // Walk the text for added tokens; what lies between them goes through BPE. lstrip / rstrip
  // added tokens swallow the whitespace beside them.
  std::size_t segment_begin = 0;
  std::size_t pos = 0;
  while (options.parse_special && pos < text.size()) {
    const Added* hit = nullptr;
    for (std::uint32_t index : added_by_first_byte_[static_cast<std::uint8_t>(text[pos])]) {
      if (text.substr(pos).starts_with(added_[index].content)) {
        hit = &added_[index];
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    std::size_t segment_end = pos;
    if (hit->lstrip) {
      while (segment_end > segment_begin && is_ascii_space(text[segment_end - 1])) --segment_end;
    }
    encode_segment(text.substr(segment_begin, segment_end - segment_begin), segment_begin == 0, out,
                   cache);
    out.push_back(hit->id);
    pos += hit->content.size();
    if (hit->rstrip) {
      while (pos < text.size() && is_ascii_space(text[pos])) ++pos;
    }
    segment_begin = pos;
  }
  encode_segment(text.substr(segment_begin), segment_begin == 0, out, cache);
  if (options.add_special) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
  return out;
}

void Tokenizer::encode_segment(
    std::string_view segment, bool at_start, std::vector<TokenId>& out,
    std::unordered_map<std::string_view, std::vector<TokenId>>& cache) const {
  if (segment.empty()) return;
  if (sentencepiece_) {
    encode_metaspace_segment(segment, at_start, out);
    return;
  }
  std::string prefixed;
  if (add_prefix_space_ && segment.front() != ' ') {
    // NOTE: the piece views must outlive the cache, so a prefixed segment is not cached.
    prefixed.reserve(segment.size() + 1);
    prefixed += ' ';
    prefixed += segment;
    std::vector<std::string_view> pieces;
    pre_tokenize(pre_, prefixed, pieces);
    for (std::string_view piece : pieces) encode_piece(piece, out);
    return;
  }
  std::vector<std::string_view> pieces;
  pre_tokenize(pre_, segment, pieces);
  for (std::string_view piece : pieces) {
    auto [it, inserted] = cache.try_emplace(piece);
    if (inserted) encode_piece(piece, it->second);
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
}

// SentencePiece: spaces become "▁", the prefix where the file asks for it, then one piece (or
// one per "▁" with Metaspace split).
void Tokenizer::encode_metaspace_segment(std::string_view segment, bool at_start,
                                         std::vector<TokenId>& out) const {
  std::string text;
  text.reserve(segment.size() + 3 * 8);
  for (char c : segment) {
    if (c == ' ') {
      text += kMetaspace;
    } else {
      text += c;
    }
  }
  const bool starts_with_metaspace = std::string_view(text).starts_with(kMetaspace);
  bool prefix = false;
  switch (prefix_) {
    case Spec::Prefix::kNone:
      break;
    case Spec::Prefix::kEverySegment:
      prefix = true;
      break;
    case Spec::Prefix::kEveryUnlessMetaspace:
      prefix = !starts_with_metaspace;
      break;
    case Spec::Prefix::kFirstUnlessMetaspace:
      prefix = at_start && !starts_with_metaspace;
      break;
  }
  if (prefix) text.insert(0, kMetaspace);
  if (!split_on_metaspace_) {
    encode_piece(text, out);
    return;
  }
  std::size_t begin = 0;
  for (std::size_t pos = kMetaspace.size(); pos <= text.size(); ++pos) {
    if (pos == text.size() || std::string_view(text).substr(pos).starts_with(kMetaspace)) {
      if (pos > begin) encode_piece(std::string_view(text).substr(begin, pos - begin), out);
      begin = pos;
    }
  }
}

void Tokenizer::character_symbols(std::string_view piece, std::vector<TokenId>& ids) const {
  std::string ch;
  for (std::size_t pos = 0; pos < piece.size();) {
    const Utf8Char c = decode_utf8(piece, pos);
    const std::size_t length = std::max<std::size_t>(c.length, 1);
    ch.assign(piece.substr(pos, length));
    pos += length;
    if (const auto it = id_by_text_.find(ch); it != id_by_text_.end()) {
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char b) {
          return byte_id_[static_cast<std::uint8_t>(b)] >= 0;
        })) {
      for (char b : ch) ids.push_back(byte_id_[static_cast<std::uint8_t>(b)]);
      continue;
    }
    if (!unknown_id_) continue;  // no unknown token: the character is dropped, as `tokenizers`
    if (fuse_unk_ && !ids.empty() && ids.back() == *unknown_id_) continue;
    ids.push_back(*unknown_id_);
  }
}

// BPE on one piece. Symbols form a linked list over the piece's bytes; a min-heap holds the
// candidate merges of adjacent symbols by (rank, position). A popped candidate is stale when
// either symbol has since been merged away or changed; it is then skipped.
void Tokenizer::encode_piece(std::string_view piece, std::vector<TokenId>& out) const {
  if (ignore_merges_) {
    const auto it = id_by_bytes_.find(std::string(piece));
    if (it != id_by_bytes_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  struct Symbol {
    TokenId id;
    std::int32_t prev;
    std::int32_t next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(piece.size());
  const auto add_symbol = [&](TokenId id) {
    const auto index = static_cast<std::int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  };
  if (sentencepiece_) {
    std::vector<TokenId> ids;
    character_symbols(piece, ids);
    for (TokenId id : ids) add_symbol(id);
  } else {
    for (char ch : piece) {
      TokenId id = byte_id_[static_cast<std::uint8_t>(ch)];
      if (id < 0) {
        if (!unknown_id_) continue;  // like `tokenizers` without unk_token: the byte is dropped
        id = *unknown_id_;
      }
      add_symbol(id);
    }
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  struct Candidate {
    std::int32_t rank;
    std::int32_t left;  // symbol index
    TokenId left_id;
    TokenId right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto push = [&](std::int32_t left) {
    const std::int32_t right = symbols[left].next;
    if (right < 0) return;
    const auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) {
      heap.push({it->second.rank, left, symbols[left].id, symbols[right].id});
    }
  };
  for (std::int32_t i = 0; i + 1 < static_cast<std::int32_t>(symbols.size()); ++i) push(i);
  while (!heap.empty()) {
    const Candidate top = heap.top();
    heap.pop();
    Symbol& left = symbols[top.left];
    if (left.id != top.left_id || left.next < 0) continue;  // merged away (-2) or changed
    Symbol& right = symbols[left.next];
    if (right.id != top.right_id) continue;
    left.id = merges_.at(pair_key(top.left_id, top.right_id)).result;
    const std::int32_t after = right.next;
    right.id = -2;
    left.next = after;
    if (after >= 0) symbols[after].prev = top.left;
    if (left.prev >= 0) push(left.prev);
    push(top.left);
  }
  for (std::int32_t i = 0; i >= 0; i = symbols[i].next) out.push_back(symbols[i].id);
}

std::string Tokenizer::decode(std::span<const TokenId> ids, bool skip_special,
                              bool strip_prefix_space) const {
  std::string out;
  for (TokenId id : ids) {
    check_id(id, "token id");
    if (skip_special && special_[id]) continue;
    out += token_bytes_[id];
  }
  if (strip_prefix_space && strip_prefix_space_ && out.starts_with(' ')) out.erase(0, 1);
  return out;
}

std::string Tokenizer::decode_text(std::span<const TokenId> ids, bool skip_special,
                                   bool strip_prefix_space) const {
  return to_valid_utf8(decode(ids, skip_special, strip_prefix_space));
}

}  // namespace infllm::model
