// Result<T>: a value or the Status that says why there is none.
//
// A minimal std::expected<T, Status> (g++ 12 lacks a stable one in C++20).
// Accessing value() of an error Result aborts: check isOk() first, or use
// SLUICE_ASSIGN_OR_RETURN.
#pragma once

#include <cstdlib>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/core/status.h"

namespace sluice {

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(v_).isOk()) {
      v_ = Status(StatusCode::kInternal, "Result built from an OK Status without a value");
    }
  }

  bool isOk() const { return v_.index() == 0; }
  explicit operator bool() const { return isOk(); }

  T& value() & { check(); return std::get<0>(v_); }
  const T& value() const& { check(); return std::get<0>(v_); }
  T&& value() && { check(); return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  // OK if this holds a value.
  Status status() const { return isOk() ? Status() : std::get<1>(v_); }

  template <typename U>
  T valueOr(U&& fallback) const& {
    return isOk() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
  }

 private:
  void check() const {
    if (!isOk()) std::abort();
  }
  std::variant<T, Status> v_;
};

}  // namespace sluice

#define SLUICE_CONCAT_INNER_(a, b) a##b
#define SLUICE_CONCAT_(a, b) SLUICE_CONCAT_INNER_(a, b)

// SLUICE_ASSIGN_OR_RETURN(auto x, makeX()); returns the Status on error.
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL_(SLUICE_CONCAT_(sluice_result_, __LINE__), lhs, expr)
#define SLUICE_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.isOk()) return tmp.status();               \
  lhs = std::move(tmp).value()
