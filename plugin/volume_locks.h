// VolumeLocks: one lock per volume name, so that the requests and the
// supervision of one volume are serialised while different volumes run in
// parallel.
//
// The driver holds a volume's lock across a whole request (binding and
// mount together); VolumeMounts takes it for the work its supervision does
// on its own. Functions that need a volume's lock held take the Held lock
// as a parameter, so a caller cannot forget it.
//
// Thread-safety: lock() may be called from any thread. The lock of one name
// is not recursive. Lock order: a volume lock before any other tenantfs
// mutex; mu_ is only held alone.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/thread_annotations.h"

namespace tenantfs {

class VolumeLocks {
 public:
  // A volume's lock, held from construction to destruction. It shares the
  // mutex, so the mutex lives as long as the lock whatever becomes of the
  // map entry.
  class Held {
   public:
    const std::string& name() const { return name_; }

   private:
    friend class VolumeLocks;
    Held(std::string name, std::shared_ptr<std::mutex> mu)
        : name_(std::move(name)), mu_(std::move(mu)), held_(*mu_) {}

    std::string name_;
    std::shared_ptr<std::mutex> mu_;  // declared before held_: outlives it
    std::unique_lock<std::mutex> held_;
  };

  // Blocks until the lock of volume `name` is free and takes it.
  [[nodiscard]] Held lock(const std::string& name) EXCLUDES(mu_);

 private:
  // The volume locks themselves stay plain std::mutex: one is made per name
  // at run time, so no annotation can name it; the Held parameter of the
  // functions that need one says it instead.
  Mutex mu_;
  std::map<std::string, std::shared_ptr<std::mutex>> locks_ GUARDED_BY(mu_);
};

}  // namespace tenantfs
