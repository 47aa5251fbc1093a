// Locks the compiler checks: clang's -Wthread-safety annotations and annotated wrappers around
// std::mutex and std::condition_variable, in the manner of LevelDB's port/thread_annotations.h.
//
// Every mutex in stablefs is a stablefs::Mutex; every member it protects is GUARDED_BY it; every
// function that must be called with it held says REQUIRES(mu). The clang build in CI compiles with
// -Wthread-safety -Werror, so a member touched without its lock does not build. With g++ the
// annotations expand to nothing.
#pragma once

#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define STABLEFS_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define STABLEFS_THREAD_ANNOTATION(x)
#endif

#define CAPABILITY(x) STABLEFS_THREAD_ANNOTATION(capability(x))
#define SCOPED_CAPABILITY STABLEFS_THREAD_ANNOTATION(scoped_lockable)
#define GUARDED_BY(x) STABLEFS_THREAD_ANNOTATION(guarded_by(x))
#define PT_GUARDED_BY(x) STABLEFS_THREAD_ANNOTATION(pt_guarded_by(x))
#define ACQUIRED_BEFORE(...) STABLEFS_THREAD_ANNOTATION(acquired_before(__VA_ARGS__))
#define ACQUIRED_AFTER(...) STABLEFS_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define REQUIRES(...) STABLEFS_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define REQUIRES_SHARED(...) STABLEFS_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define ACQUIRE(...) STABLEFS_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define ACQUIRE_SHARED(...) STABLEFS_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define RELEASE(...) STABLEFS_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define RELEASE_SHARED(...) STABLEFS_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define TRY_ACQUIRE(...) STABLEFS_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define EXCLUDES(...) STABLEFS_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define ASSERT_CAPABILITY(x) STABLEFS_THREAD_ANNOTATION(assert_capability(x))
#define RETURN_CAPABILITY(x) STABLEFS_THREAD_ANNOTATION(lock_returned(x))
#define NO_THREAD_SAFETY_ANALYSIS STABLEFS_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace stablefs {

class CondVar;

class CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ACQUIRE() { mu_.lock(); }
  void Unlock() RELEASE() { mu_.unlock(); }
  bool TryLock() TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the caller holds the mutex (it cannot check at run time).
  void AssertHeld() ASSERT_CAPABILITY(this) {}

 private:
  friend class CondVar;
  std::mutex mu_;
};

// Holds a Mutex for the lifetime of the scope.
class SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() RELEASE() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Holds two Mutexes for the lifetime of the scope, `a` and then `b`, or one if both name the
// same mutex (a rename's parents, when it renames within one directory). The caller keeps one
// order for every pair (or, as namespace changes under ns_mu_, never takes two such pairs at
// once). The analysis sees both held; the body is exempt, as it takes `b` only if distinct.
class SCOPED_CAPABILITY MutexLockTwo {
 public:
  MutexLockTwo(Mutex* a, Mutex* b) ACQUIRE(a, b) NO_THREAD_SAFETY_ANALYSIS
      : a_(a),
        b_(a == b ? nullptr : b) {
    a_->Lock();
    if (b_ != nullptr) b_->Lock();
  }
  ~MutexLockTwo() RELEASE() NO_THREAD_SAFETY_ANALYSIS {
    if (b_ != nullptr) b_->Unlock();
    a_->Unlock();
  }
  MutexLockTwo(const MutexLockTwo&) = delete;
  MutexLockTwo& operator=(const MutexLockTwo&) = delete;

 private:
  Mutex* const a_;
  Mutex* const b_;
};

// Holds a Mutex for the lifetime of the scope if `mu` is not null (an inode a change touches
// only sometimes). The analysis cannot know whether it is held: where the code relies on it, it
// says so with AssertHeld() under the same condition.
class MutexLockIf {
 public:
  explicit MutexLockIf(Mutex* mu) NO_THREAD_SAFETY_ANALYSIS : mu_(mu) {
    if (mu_ != nullptr) mu_->Lock();
  }
  ~MutexLockIf() NO_THREAD_SAFETY_ANALYSIS {
    if (mu_ != nullptr) mu_->Unlock();
  }
  MutexLockIf(const MutexLockIf&) = delete;
  MutexLockIf& operator=(const MutexLockIf&) = delete;

 private:
  Mutex* const mu_;
};

// A reader/writer lock that prefers writers: once a writer waits, new readers wait behind it, so
// a steady stream of readers cannot starve it. A thread must not take it shared twice (a writer
// waiting between the two would deadlock it).
class CAPABILITY("shared mutex") SharedMutex {
 public:
  SharedMutex() {
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&rw_, &attr);
    pthread_rwlockattr_destroy(&attr);
  }
  ~SharedMutex() { pthread_rwlock_destroy(&rw_); }
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void Lock() ACQUIRE() { pthread_rwlock_wrlock(&rw_); }
  void Unlock() RELEASE() { pthread_rwlock_unlock(&rw_); }
  void LockShared() ACQUIRE_SHARED() { pthread_rwlock_rdlock(&rw_); }
  void UnlockShared() RELEASE_SHARED() { pthread_rwlock_unlock(&rw_); }

 private:
  pthread_rwlock_t rw_;
};

// Holds a SharedMutex exclusively for the lifetime of the scope.
class SCOPED_CAPABILITY WriterLock {
 public:
  explicit WriterLock(SharedMutex* mu) ACQUIRE(mu) : mu_(mu) { mu_->Lock(); }
  ~WriterLock() RELEASE() { mu_->Unlock(); }
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// Holds a SharedMutex shared for the lifetime of the scope.
class SCOPED_CAPABILITY ReaderLock {
 public:
  explicit ReaderLock(SharedMutex* mu) ACQUIRE_SHARED(mu) : mu_(mu) { mu_->LockShared(); }
  ~ReaderLock() RELEASE() { mu_->UnlockShared(); }
  ReaderLock(const ReaderLock&) = delete;
  ReaderLock& operator=(const ReaderLock&) = delete;

 private:
  SharedMutex* const mu_;
};

// A condition variable bound to one Mutex, which Wait() requires held.
class CondVar {
 public:
  explicit CondVar(Mutex* mu) : mu_(mu) {}
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  // REQUIRES: the bound mutex is held (clang cannot tie it to the caller's name for it).
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    cv_.wait(lock);
    lock.release();
  }
  // Returns false if `timeout` passed without a signal.
  bool WaitFor(std::chrono::nanoseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_->mu_, std::adopt_lock);
    bool signalled = cv_.wait_for(lock, timeout) == std::cv_status::no_timeout;
    lock.release();
    return signalled;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  Mutex* const mu_;
  std::condition_variable cv_;
};

}  // namespace stablefs
