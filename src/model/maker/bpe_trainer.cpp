// bpe_trainer.cpp: deterministic byte-level BPE training (see bpe_trainer.hpp).
//
// Counting is the plain algorithm: every step recounts the pairs of the distinct pre-tokenized
// words (weighted by frequency) and merges the best one everywhere. That is O(steps x corpus
// words), fine for the few hundred merges of generated models on a corpus of a few hundred KB.
#include "model/maker/bpe_trainer.hpp"

#include <map>
#include <unordered_map>

#include "core/errors.hpp"
#include "model/tokenizer/tokenizer_pretokenize.hpp"
#include "model/tokenizer/unicode.hpp"

namespace infllm::model {

namespace {

using nlohmann::json;

// Chapter 1 of Pride and Prejudice (Jane Austen, 1813; public domain), as the Debian package
// r-cran-janeaustenr carries it.
constexpr std::string_view kDefaultCorpus =
    R"(It is a truth universally acknowledged, that a single man in possession
of a good fortune, must be in want of a wife.

However little known the feelings or views of such a man may be on his
first entering a neighbourhood, this truth is so well fixed in the minds
of the surrounding families, that he is considered the rightful property
of some one or other of their daughters.

"My dear Mr. Bennet," said his lady to him one day, "have you heard that
Netherfield Park is let at last?"

Mr. Bennet replied that he had not.

"But it is," returned she; "for Mrs. Long has just been here, and she
told me all about it."

Mr. Bennet made no answer.

"Do you not want to know who has taken it?" cried his wife impatiently.

"_You_ want to tell me, and I have no objection to hearing it."

This was invitation enough.

"Why, my dear, you must know, Mrs. Long says that Netherfield is taken
by a young man of large fortune from the north of England; that he came
down on Monday in a chaise and four to see the place, and was so much
delighted with it, that he agreed with Mr. Morris immediately; that he
is to take possession before Michaelmas, and some of his servants are to
be in the house by the end of next week."

"What is his name?"

"Bingley."

"Is he married or single?"

"Oh! Single, my dear, to be sure! A single man of large fortune; four or
five thousand a year. What a fine thing for our girls!"

"How so? How can it affect them?"

"My dear Mr. Bennet," replied his wife, "how can you be so tiresome! You
must know that I am thinking of his marrying one of them."

"Is that his design in settling here?"

"Design! Nonsense, how can you talk so! But it is very likely that he
_may_ fall in love with one of them, and therefore you must visit him as
soon as he comes."

"I see no occasion for that. You and the girls may go, or you may send
them by themselves, which perhaps will be still better, for as you are
as handsome as any of them, Mr. Bingley may like you the best of the
party."

"My dear, you flatter me. I certainly _have_ had my share of beauty, but
I do not pretend to be anything extraordinary now. When a woman has five
grown-up daughters, she ought to give over thinking of her own beauty."

"In such cases, a woman has not often much beauty to think of."

"But, my dear, you must indeed go and see Mr. Bingley when he comes into
the neighbourhood."

"It is more than I engage for, I assure you."

"But consider your daughters. Only think what an establishment it would
be for one of them. Sir William and Lady Lucas are determined to
go, merely on that account, for in general, you know, they visit no
newcomers. Indeed you must go, for it will be impossible for _us_ to
visit him if you do not."

"You are over-scrupulous, surely. I dare say Mr. Bingley will be very
glad to see you; and I will send a few lines by you to assure him of my
hearty consent to his marrying whichever he chooses of the girls; though
I must throw in a good word for my little Lizzy."

"I desire you will do no such thing. Lizzy is not a bit better than the
others; and I am sure she is not half so handsome as Jane, nor half so
good-humoured as Lydia. But you are always giving _her_ the preference."

"They have none of them much to recommend them," replied he; "they are
all silly and ignorant like other girls; but Lizzy has something more of
quickness than her sisters."

"Mr. Bennet, how _can_ you abuse your own children in such a way? You
take delight in vexing me. You have no compassion for my poor nerves."

"You mistake me, my dear. I have a high respect for your nerves. They
are my old friends. I have heard you mention them with consideration
these last twenty years at least."

"Ah, you do not know what I suffer."

"But I hope you will get over it, and live to see many young men of four
thousand a year come into the neighbourhood."

"It will be no use to us, if twenty such should come, since you will not
visit them."

"Depend upon it, my dear, that when there are twenty, I will visit them
all."

Mr. Bennet was so odd a mixture of quick parts, sarcastic humour,
reserve, and caprice, that the experience of three-and-twenty years had
been insufficient to make his wife understand his character. _Her_ mind
was less difficult to develop. She was a woman of mean understanding,
little information, and uncertain temper. When she was discontented,
she fancied herself nervous. The business of her life was to get her
daughters married; its solace was visiting and news.)";

// The corpus with the special tokens cut out: the pieces between them.
std::vector<std::string_view> split_specials(std::string_view corpus,
                                             const std::vector<std::string>& specials) {
  std::vector<std::string_view> parts;
  std::size_t begin = 0;
  std::size_t pos = 0;
  while (pos < corpus.size()) {
    std::size_t hit = 0;
    for (const auto& s : specials) {
      if (!s.empty() && corpus.substr(pos).starts_with(s)) hit = std::max(hit, s.size());
    }
    if (hit == 0) {
      ++pos;
      continue;
    }
    parts.push_back(corpus.substr(begin, pos - begin));
    pos += hit;
    begin = pos;
  }
  parts.push_back(corpus.substr(begin));
  return parts;
}

std::string byte_level_text(std::string_view bytes) {
  std::string text;
  for (char c : bytes) append_utf8(text, byte_to_unicode(static_cast<std::uint8_t>(c)));
  return text;
}

json added_token(std::int32_t id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

json byte_level(bool add_prefix_space, bool trim_offsets) {
  return {{"type", "ByteLevel"},
          {"add_prefix_space", add_prefix_space},
          {"trim_offsets", trim_offsets},
          {"use_regex", true}};
}

}  // namespace

std::string_view default_bpe_corpus() { return kDefaultCorpus; }

json train_byte_level_bpe(std::string_view corpus, const BpeTrainerOptions& options) {
  const auto specials = static_cast<std::int32_t>(options.special_tokens.size());
  if (options.vocab_size < specials + 256) {
    throw UsageError("vocab-size", "vocab_size " + std::to_string(options.vocab_size) +
                                       " is below the " + std::to_string(specials + 256) +
                                       " special and byte tokens");
  }
  // id -> token bytes; specials first, then the 256 bytes.
  std::vector<std::string> bytes_of;
  for (const auto& s : options.special_tokens) bytes_of.push_back(s);
  for (int b = 0; b < 256; ++b) bytes_of.emplace_back(1, static_cast<char>(b));
  std::unordered_map<std::string, std::int32_t> id_of_bytes;
  for (std::int32_t b = 0; b < 256; ++b) id_of_bytes.emplace(bytes_of[specials + b], specials + b);

  // Distinct words (std::map: a fixed order) with their counts, then as symbol sequences.
  std::map<std::string_view, std::int64_t> word_counts;
  std::vector<std::string_view> pieces;
  for (std::string_view part : split_specials(corpus, options.special_tokens)) {
    pieces.clear();
    pre_tokenize(PreTokenizerKind::kGpt2, part, pieces);
    for (std::string_view p : pieces) ++word_counts[p];
  }
  std::vector<std::vector<std::int32_t>> words;
  std::vector<std::int64_t> counts;
  for (const auto& [word, count] : word_counts) {
    std::vector<std::int32_t> symbols;
    for (char c : word) symbols.push_back(specials + static_cast<std::uint8_t>(c));
    words.push_back(std::move(symbols));
    counts.push_back(count);
  }

  std::vector<std::pair<std::int32_t, std::int32_t>> merges;
  while (static_cast<std::int32_t>(bytes_of.size()) < options.vocab_size) {
    std::map<std::pair<std::int32_t, std::int32_t>, std::int64_t> pair_counts;
    for (std::size_t w = 0; w < words.size(); ++w) {
      for (std::size_t i = 0; i + 1 < words[w].size(); ++i) {
        pair_counts[{words[w][i], words[w][i + 1]}] += counts[w];
      }
    }
    if (pair_counts.empty()) {
      throw InputError("corpus", "",
                       "only " + std::to_string(bytes_of.size()) + " tokens can be learned, " +
                           std::to_string(options.vocab_size) + " asked: the corpus is too short");
    }
    // The most frequent pair; the map's order makes the smallest pair win ties.
    auto best = pair_counts.begin();
    for (auto it = pair_counts.begin(); it != pair_counts.end(); ++it) {
      if (it->second > best->second) best = it;
    }
    const auto [left, right] = best->first;
    const std::string merged = bytes_of[left] + bytes_of[right];
    // Two merge paths can spell the same token ("a"+"bc", "ab"+"c"); it keeps one id.
    auto [found, inserted] =
        id_of_bytes.emplace(merged, static_cast<std::int32_t>(bytes_of.size()));
    if (inserted) bytes_of.push_back(merged);
    const std::int32_t result = found->second;
    merges.emplace_back(left, right);
    for (auto& word : words) {
      std::size_t out = 0;
      for (std::size_t i = 0; i < word.size(); ++i) {
        if (i + 1 < word.size() && word[i] == left && word[i + 1] == right) {
          word[out++] = result;
          ++i;
        } else {
          word[out++] = word[i];
        }
      }
      word.resize(out);
    }
  }

  json vocab = json::object();
  json added = json::array();
  for (std::int32_t id = 0; id < static_cast<std::int32_t>(bytes_of.size()); ++id) {
    if (id < specials) {
      vocab[bytes_of[id]] = id;
      added.push_back(added_token(id, bytes_of[id]));
    } else {
      vocab[byte_level_text(bytes_of[id])] = id;
    }
  }
  json merge_list = json::array();
  for (const auto& [left, right] : merges) {
    // The legacy "left right" form, which every `tokenizers` version reads; byte-level texts
    // never contain a plain space.
    merge_list.push_back(byte_level_text(bytes_of[left]) + " " + byte_level_text(bytes_of[right]));
  }
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", added},
          {"normalizer", nullptr},
          {"pre_tokenizer", byte_level(false, true)},
          {"post_processor", byte_level(true, false)},
          {"decoder", byte_level(true, true)},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", vocab},
            {"merges", merge_list}}}};
}

}  // namespace infllm::model
