#pragma once
// Owns one file descriptor and closes it on every path out of a scope. The one
// such wrapper in the project: header-only and dependency-free, so the PAM
// module may use it too.

#include <unistd.h>

#include <utility>

namespace kpanel::common {

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      reset(std::exchange(other.fd_, -1));
    }
    return *this;
  }
  ~UniqueFd() { reset(); }

  [[nodiscard]] int get() const noexcept { return fd_; }
  [[nodiscard]] bool valid() const noexcept { return fd_ >= 0; }

  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

  // Hands the descriptor to a new owner (e.g. an asio socket); this one forgets it.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }

  // For a descriptor that was written to: close(2) can report a deferred
  // write error, which the caller must see.
  int close() noexcept {
    const int result = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

}  // namespace kpanel::common
