#include "common/status.h"

#include <cstring>

namespace tenantfs {

std::string Status::ToString() const {
  const char* name = "unknown";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kNotFound: name = "not found"; break;
    case Code::kAlreadyExists: name = "already exists"; break;
    case Code::kInvalidArgument: name = "invalid argument"; break;
    case Code::kFailedPrecondition: name = "failed precondition"; break;
    case Code::kIOError: name = "I/O error"; break;
    case Code::kCorruption: name = "corruption"; break;
    case Code::kInternal: name = "internal error"; break;
  }
  return std::string(name) + ": " + message_;
}

Status PosixError(const std::string& context, int err) {
  return Status::IOError(context + ": " + std::strerror(err));
}

}  // namespace tenantfs
