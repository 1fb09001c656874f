// wire.cpp: see wire.hpp.
#include "dist/wire.hpp"

#include <nlohmann/json.hpp>
#include <type_traits>

namespace infllm::dist {

namespace {

using nlohmann::json;

json ref_json(BlockRef r) { return json::array({r.rank.value(), r.slot.value()}); }
BlockRef ref_from(const json& j) {
  return BlockRef{RankId{j.at(0).get<std::int32_t>()}, SlotId{j.at(1).get<std::int32_t>()}};
}

json slots_json(const std::vector<SlotId>& v) {
  json a = json::array();
  for (SlotId s : v) a.push_back(s.value());
  return a;
}
std::vector<SlotId> slots_from(const json& j) {
  std::vector<SlotId> v;
  v.reserve(j.size());
  for (const auto& x : j) v.push_back(SlotId{x.get<std::int32_t>()});
  return v;
}

json grant_json(const Grant& g) {
  return json::array({g.contract.value(), g.request.value(), g.debtor.value(), ref_json(g.slot)});
}
Grant grant_from(const json& j) {
  return Grant{ContractId{j.at(0).get<std::int64_t>()}, RequestId{j.at(1).get<std::int64_t>()},
               RankId{j.at(2).get<std::int32_t>()}, ref_from(j.at(3))};
}

json move_json(const BlockMove& m) {
  return json::array({m.id.value(), m.request.value(), m.home.value(), ref_json(m.from),
                      ref_json(m.to), m.via_scratch, m.new_contract.value()});
}
BlockMove move_from(const json& j) {
  BlockMove m;
  m.id = MoveId{j.at(0).get<std::int64_t>()};
  m.request = RequestId{j.at(1).get<std::int64_t>()};
  m.home = RankId{j.at(2).get<std::int32_t>()};
  m.from = ref_from(j.at(3));
  m.to = ref_from(j.at(4));
  m.via_scratch = j.at(5).get<bool>();
  m.new_contract = ContractId{j.at(6).get<std::int64_t>()};
  return m;
}

json spec_json(const RequestSpec& s) {
  return json::array({s.id.value(), s.prompt_tokens, s.max_new_tokens, s.age});
}
RequestSpec spec_from(const json& j) {
  return RequestSpec{RequestId{j.at(0).get<std::int64_t>()}, j.at(1).get<std::int64_t>(),
                     j.at(2).get<std::int64_t>(), j.at(3).get<std::int64_t>()};
}

template <typename T, typename F>
json array_of(const std::vector<T>& v, F f) {
  json a = json::array();
  for (const auto& x : v) a.push_back(f(x));
  return a;
}
template <typename T, typename F>
std::vector<T> vector_of(const json& j, F f) {
  std::vector<T> v;
  v.reserve(j.size());
  for (const auto& x : j) v.push_back(f(x));
  return v;
}

// By position, in core/step_stats.hpp's order: both sides are the same build.
json stats_json(const StepStats& s) {
  json a = json::array();
  for_each_field(s, [&](const char*, const auto& v) { a.push_back(v); });
  return a;
}
StepStats stats_from(const json& j) {
  StepStats s;
  std::size_t i = 0;
  for_each_field(s, [&](const char*, auto& v) { v = j.at(i++).get<std::decay_t<decltype(v)>>(); });
  return s;
}

}  // namespace

std::vector<std::uint8_t> encode(const io::ResultRecord& record) {
  return json::to_msgpack(io::to_json(record));
}

io::ResultRecord decode_record(const std::uint8_t* data, std::size_t size) {
  return io::record_from_json(json::from_msgpack(data, data + size), "control message", "result");
}

std::vector<std::uint8_t> encode(const InstanceReport& p) {
  const StepReport& r = p.report;
  json j = {{"rank", r.rank.value()},
            {"step", r.step},
            {"free", slots_json(r.free_slots)},
            {"lend", r.lend_limit},
            {"needs", array_of(r.needs,
                               [](const LoanNeed& n) {
                                 return json::array({n.request.value(), n.blocks});
                               })},
            {"unpush", r.unpushable_blocks},
            {"fin", array_of(r.finished, [](RequestId q) { return json(q.value()); })},
            {"work", r.expected_work},
            {"run", r.running},
            {"stop", r.stop},
            {"stats", stats_json(p.stats)},
            {"res", array_of(p.results, [](const FinishedRequest& f) {
               return json::array({f.id.value(), json::binary(f.record)});
             })}};
  return json::to_msgpack(j);
}

InstanceReport decode_report(const std::uint8_t* data, std::size_t size) {
  const json j = json::from_msgpack(data, data + size);
  InstanceReport p;
  StepReport& r = p.report;
  r.rank = RankId{j.at("rank").get<std::int32_t>()};
  r.step = j.at("step").get<std::int64_t>();
  r.free_slots = slots_from(j.at("free"));
  r.lend_limit = j.at("lend").get<std::int32_t>();
  r.needs = vector_of<LoanNeed>(j.at("needs"), [](const json& n) {
    return LoanNeed{RequestId{n.at(0).get<std::int64_t>()}, n.at(1).get<std::int32_t>()};
  });
  r.unpushable_blocks = j.at("unpush").get<std::int32_t>();
  r.finished = vector_of<RequestId>(j.at("fin"),
                                    [](const json& q) { return RequestId{q.get<std::int64_t>()}; });
  r.expected_work = j.at("work").get<std::int64_t>();
  r.running = j.at("run").get<std::int32_t>();
  r.stop = j.at("stop").get<bool>();
  p.stats = stats_from(j.at("stats"));
  for (const auto& x : j.at("res")) {
    p.results.push_back(
        FinishedRequest{RequestId{x.at(0).get<std::int64_t>()}, x.at(1).get_binary()});
  }
  return p;
}

std::vector<std::uint8_t> encode(const InstanceDecision& p) {
  const RankDecision& d = p.decision;
  json j = {{"rank", d.rank.value()},
            {"step", d.step},
            {"rel", slots_json(d.releases)},
            {"com", array_of(d.commits, move_json)},
            {"late", slots_json(d.late_releases)},
            {"pre", array_of(d.preempt, [](RequestId q) { return json(q.value()); })},
            {"fail", array_of(d.fail,
                              [](const Verdict& v) {
                                return json::array({v.request.value(), static_cast<int>(v.reason)});
                              })},
            {"gout", array_of(d.grants_out, grant_json)},
            {"gin", array_of(d.grants_in, grant_json)},
            {"mov", array_of(d.moves, move_json)},
            {"pl", array_of(d.placements, [](const Placement& p) { return spec_json(p.spec); })},
            {"stop", d.stop},
            {"end", p.end},
            {"xchg", p.exchange}};
  return json::to_msgpack(j);
}

InstanceDecision decode_decision(const std::uint8_t* data, std::size_t size) {
  const json j = json::from_msgpack(data, data + size);
  InstanceDecision p;
  RankDecision& d = p.decision;
  d.rank = RankId{j.at("rank").get<std::int32_t>()};
  d.step = j.at("step").get<std::int64_t>();
  d.releases = slots_from(j.at("rel"));
  d.commits = vector_of<BlockMove>(j.at("com"), move_from);
  d.late_releases = slots_from(j.at("late"));
  d.preempt = vector_of<RequestId>(j.at("pre"),
                                   [](const json& q) { return RequestId{q.get<std::int64_t>()}; });
  d.fail = vector_of<Verdict>(j.at("fail"), [](const json& v) {
    return Verdict{RequestId{v.at(0).get<std::int64_t>()},
                   static_cast<EndReason>(v.at(1).get<int>())};
  });
  d.grants_out = vector_of<Grant>(j.at("gout"), grant_from);
  d.grants_in = vector_of<Grant>(j.at("gin"), grant_from);
  d.moves = vector_of<BlockMove>(j.at("mov"), move_from);
  d.placements =
      vector_of<Placement>(j.at("pl"), [](const json& s) { return Placement{spec_from(s)}; });
  d.stop = j.at("stop").get<bool>();
  p.end = j.at("end").get<bool>();
  p.exchange = j.at("xchg").get<bool>();
  return p;
}

std::vector<std::uint8_t> encode(const InstanceView& v) {
  json j = {{"rank", v.rank.value()},
            {"held", array_of(v.held,
                              [](const auto& h) {
                                return json::array({h.first.value(), h.second.request.value(),
                                                    h.second.debtor.value()});
                              })},
            {"req", array_of(v.requests, [](RequestId q) { return json(q.value()); })},
            {"named", array_of(v.named, ref_json)}};
  return json::to_msgpack(j);
}

InstanceView decode_view(const std::uint8_t* data, std::size_t size) {
  const json j = json::from_msgpack(data, data + size);
  InstanceView v;
  v.rank = RankId{j.at("rank").get<std::int32_t>()};
  v.held = vector_of<std::pair<SlotId, HeldBlock>>(j.at("held"), [](const json& h) {
    return std::pair{
        SlotId{h.at(0).get<std::int32_t>()},
        HeldBlock{RequestId{h.at(1).get<std::int64_t>()}, RankId{h.at(2).get<std::int32_t>()}}};
  });
  v.requests = vector_of<RequestId>(j.at("req"),
                                    [](const json& q) { return RequestId{q.get<std::int64_t>()}; });
  v.named = vector_of<BlockRef>(j.at("named"), ref_from);
  return v;
}

}  // namespace infllm::dist
