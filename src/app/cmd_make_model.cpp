// cmd_make_model.cpp: `infllm make-model`: writes a generated model and says what it wrote.
#include <iostream>

#include "app/cli.hpp"
#include "model/maker/make_model.hpp"

namespace infllm::app {

int run_make_model(const MakeModelConfig& config) {
  model::MakeModelOptions options;
  options.preset = config.preset;
  options.out_dir = config.out;
  options.seed = config.seed;
  options.dtype = *model::parse_st_dtype(config.dtype);  // validated by parse_make_model
  const model::ModelConfig c = model::make_model(options);
  std::cout << "make-model: wrote " << config.out << " (preset " << config.preset << ", seed "
            << config.seed << ", " << config.dtype << "): " << c.num_layers << " layers, hidden "
            << c.hidden_size << ", " << c.num_heads << "/" << c.num_kv_heads << " heads, vocab "
            << c.vocab_size << ", " << c.parameter_count() << " parameters\n";
  return 0;
}

}  // namespace infllm::app
