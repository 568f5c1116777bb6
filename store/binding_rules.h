// The binding rules a BindingStore enforces, each stated once with the
// message a user sees when it refuses.
//
// The store applies them inside its transactions, where no other writer can
// slip in between check and change. The Docker driver applies the same
// functions to what it has already read, where it must answer before it
// touches the disk (a re-created volume, a Remove that would first unmount);
// then the store's check is only the guard against another process.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/status.h"

namespace tenantfs {

// A binding never changes. OK when `requested` are exactly the options
// volume `volume` was bound with (`bound`): Docker re-creates volumes, and
// that must be a no-op. Otherwise kAlreadyExists naming the first option, in
// name order, that differs.
Status check_rebind(const std::string& volume, const std::map<std::string, std::string>& bound,
                    const std::map<std::string, std::string>& requested);

// A volume goes only once no container uses it. OK for 0 `references`;
// otherwise kFailedPrecondition saying how to find the containers.
Status check_unreferenced(const std::string& volume, int64_t references);

// How many of a tenant's volumes check_tenant_unbound names: the message is
// read by a person, and the command it suggests must stay short to copy.
inline constexpr int kBoundVolumesNamed = 10;

// A tenant goes only once no volume is bound to it. OK for a `total` of 0;
// otherwise kFailedPrecondition naming `volumes` (the first
// kBoundVolumesNamed of them, in name order) and the command that removes
// them.
Status check_tenant_unbound(const std::string& tenant, const std::vector<std::string>& volumes,
                            int64_t total);

}  // namespace tenantfs
