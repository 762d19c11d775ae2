#include "common/core/status.h"

#include <cerrno>
#include <cstring>

namespace sluice {

std::string_view statusCodeName(StatusCode code) {
  switch (code) {
#define SLUICE_STATUS_NAME(name, num, text) \
  case StatusCode::name:                    \
    return text;
    SLUICE_STATUS_CODES(SLUICE_STATUS_NAME)
#undef SLUICE_STATUS_NAME
  }
  return "unknown status code";
}

bool isKnownStatusCode(int32_t raw) {
  switch (raw) {
#define SLUICE_STATUS_KNOWN(name, num, text) case num:
    SLUICE_STATUS_CODES(SLUICE_STATUS_KNOWN)
#undef SLUICE_STATUS_KNOWN
    return true;
    default:
      return false;
  }
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    state_ = std::make_shared<const State>(State{code, std::move(message)});
  }
}

const std::string& Status::message() const {
  static const std::string kEmpty;
  return state_ ? state_->message : kEmpty;
}

std::string Status::toString() const {
  if (isOk()) return "ok";
  std::string out(statusCodeName(state_->code));
  if (!state_->message.empty()) {
    out += ": ";
    out += state_->message;
  }
  return out;
}

Status Status::withContext(std::string_view context) const {
  if (isOk()) return *this;
  std::string m(context);
  m += ": ";
  m += state_->message;
  return Status(state_->code, std::move(m));
}

Status errnoStatus(int err, std::string_view what) {
  StatusCode code = StatusCode::kIoError;
  switch (err) {
    case ENOSPC:
    case EDQUOT:
      code = StatusCode::kNoSpace;
      break;
    case ENOENT:
      code = StatusCode::kNotFound;
      break;
    case EACCES:
    case EPERM:
      code = StatusCode::kPermissionDenied;
      break;
    case EEXIST:
      code = StatusCode::kAlreadyExists;
      break;
    case EMFILE:
    case ENFILE:
      code = StatusCode::kResourceExhausted;
      break;
    default:
      break;
  }
  std::string m(what);
  m += ": ";
  m += std::strerror(err);
  return Status(code, std::move(m));
}

}  // namespace sluice
