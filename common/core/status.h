// Status: the error value of every fallible Sluice call.
//
// A Status is a code from the one table below plus a message that names the
// object and the cause ("chunk 3f2a…: checksum mismatch on put"). OK carries
// no allocation. Status is [[nodiscard]]: dropping one on purpose must be
// spelled `status.ignore()` so every such place can be found with grep.
//
// Thread safety: a Status is a value; distinct objects may be used from
// distinct threads freely.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace sluice {

// The one code table. Numbers are stable: they travel on the wire (frame
// header status field) and appear in logs and CLI exit codes. Grouped by
// subsystem; add new codes at the end of a group's range, never renumber.
#define SLUICE_STATUS_CODES(X)                                                  \
  /* generic 0-99 */                                                             \
  X(kOk, 0, "ok")                                                                \
  X(kInvalidArgument, 1, "invalid argument")                                     \
  X(kNotFound, 2, "not found")                                                   \
  X(kAlreadyExists, 3, "already exists")                                         \
  X(kOutOfRange, 4, "out of range")                                              \
  X(kFailedPrecondition, 5, "failed precondition")                               \
  X(kInternal, 6, "internal error")                                              \
  X(kUnimplemented, 7, "unimplemented")                                          \
  X(kCancelled, 8, "cancelled")                                                  \
  X(kResourceExhausted, 9, "resource exhausted")                                 \
  X(kBusy, 10, "busy")                                                           \
  X(kPermissionDenied, 11, "permission denied")                                  \
  /* storage and data integrity 100-199 */                                       \
  X(kIoError, 100, "I/O error")                                                  \
  X(kNoSpace, 101, "no space left")                                              \
  X(kCorruption, 102, "data corruption")                                         \
  X(kChecksumMismatch, 103, "checksum mismatch")                                 \
  X(kTooLarge, 104, "too large")                                                 \
  /* rpc and transport 200-299 */                                                \
  X(kTimeout, 200, "timed out")                                                  \
  X(kUnavailable, 201, "unavailable")                                            \
  X(kProtocolError, 202, "protocol error")                                       \
  X(kShutdown, 203, "shutting down")                                             \
  X(kFabricError, 204, "fabric error")                                           \
  /* metadata 300-399 */                                                         \
  X(kWrongEpoch, 300, "wrong map epoch")                                         \
  X(kConflict, 301, "conflict")                                                  \
  X(kNotEmpty, 302, "not empty")

enum class StatusCode : int32_t {
#define SLUICE_STATUS_ENUM(name, num, text) name = num,
  SLUICE_STATUS_CODES(SLUICE_STATUS_ENUM)
#undef SLUICE_STATUS_ENUM
};

// Human text for a code ("checksum mismatch"); "unknown status code N" for a
// number not in the table (e.g. one received from a newer peer).
std::string_view statusCodeName(StatusCode code);

// True if `raw` is a number in the table. Use before casting wire values.
bool isKnownStatusCode(int32_t raw);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message);

  static Status ok() { return Status(); }

  bool isOk() const { return state_ == nullptr; }
  explicit operator bool() const { return isOk(); }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // The message without the code's name; empty for OK.
  const std::string& message() const;
  // "checksum mismatch: chunk 3f2a…: stored hash differs" — for logs and users.
  std::string toString() const;

  // Prefix context naming an outer object: "reading v3/a.bin: " + inner message.
  Status withContext(std::string_view context) const;

  // Explicitly discard. Use where ignoring an error is correct, and say why.
  void ignore() const {}

  bool operator==(const Status& other) const {
    return code() == other.code() && message() == other.message();
  }

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  std::shared_ptr<const State> state_;  // null means OK; shared so copies are cheap
};

// Factories, one per code that call sites commonly build.
inline Status invalidArgument(std::string m) { return {StatusCode::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status alreadyExists(std::string m) { return {StatusCode::kAlreadyExists, std::move(m)}; }
inline Status outOfRange(std::string m) { return {StatusCode::kOutOfRange, std::move(m)}; }
inline Status failedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status internalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }
inline Status ioError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status corruption(std::string m) { return {StatusCode::kCorruption, std::move(m)}; }
inline Status checksumMismatch(std::string m) {
  return {StatusCode::kChecksumMismatch, std::move(m)};
}
inline Status timeoutError(std::string m) { return {StatusCode::kTimeout, std::move(m)}; }
inline Status unavailable(std::string m) { return {StatusCode::kUnavailable, std::move(m)}; }
inline Status protocolError(std::string m) { return {StatusCode::kProtocolError, std::move(m)}; }

// An I/O error from errno: maps ENOSPC/EDQUOT to kNoSpace, ENOENT to
// kNotFound, EACCES/EPERM to kPermissionDenied, EEXIST to kAlreadyExists,
// EMFILE/ENFILE (out of file descriptors) to kResourceExhausted, anything
// else to kIoError; the message is "<what>: <strerror(err)>".
Status errnoStatus(int err, std::string_view what);

}  // namespace sluice

// Return early from the enclosing function if `expr` (a Status) is not OK.
#define SLUICE_RETURN_IF_ERROR(expr)              \
  do {                                            \
    ::sluice::Status sluice_status_ = (expr);     \
    if (!sluice_status_.isOk()) return sluice_status_; \
  } while (0)
