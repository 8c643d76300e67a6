#pragma once
// Waiting for something another thread does, without a fixed sleep.
#include <chrono>
#include <thread>

namespace kpanel::test {

// Polls `condition` for up to five seconds; its last answer.
template <typename Condition>
bool eventually(const Condition& condition) {
  for (int i = 0; i < 500; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return condition();
}

}  // namespace kpanel::test
