// The CPUs a thread may run on, for code that spreads work across them (the
// mapper's per-CPU queues and brokers) and for the tests that check it.
#pragma once

#include <vector>

namespace tenantfs {

// The CPUs the calling thread may run on (its affinity mask), ascending;
// empty if the mask cannot be read.
std::vector<int> allowed_cpus();

}  // namespace tenantfs
