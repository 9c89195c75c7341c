// Result<T>: a value or the bus::Error that prevented it, for code below the process edges.
//
// The cache (core::ContentStore) and the code that drives it return errors as values: a
// failure is an ordinary outcome there (a full disk, a blob removed meanwhile, a hash that
// does not match), handled where it happens, and the pull engine passes it on to the
// request it belongs to. Exceptions are kept for the edges of a process (main, a request
// handler, a CLI command), where value() turns a Result back into a throw.
#pragma once

#include <optional>
#include <utility>
#include <variant>

#include "modelzoo/bus/message.h"

namespace modelzoo::bus {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  // The error; only when !ok().
  const Error& error() const { return std::get<1>(v_); }
  // The value, or a throw of the error (at a process edge).
  T& value() & {
    if (!ok()) throw error();
    return std::get<0>(v_);
  }
  T&& value() && {
    if (!ok()) throw error();
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return std::get<0>(v_); }
  T* operator->() { return &std::get<0>(v_); }
  // nullopt when ok, else the error: for code that keeps "the first failure" of several.
  std::optional<Error> failure() const { return ok() ? std::nullopt : std::optional<Error>(error()); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT

  bool ok() const { return !e_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return *e_; }
  void value() const {
    if (e_) throw *e_;
  }
  std::optional<Error> failure() const { return e_; }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

}  // namespace modelzoo::bus
