// Training checkpoints written on a thread of their own, so an epoch waits for the snapshot of
// the state, not for the disk: a reference-recipe checkpoint (2.3 MB: weights and optimizer
// state, checksummed, fsync'd, renamed into place) took 12 ms to save on the CI machine kind,
// more than two GPU epochs at the 5 ms goal.
//
// One write at a time. A snapshot submitted while one is being written waits; a newer one
// replaces a waiting one (a resume needs only the latest). flush() returns when everything
// submitted is on disk; a failed write is thrown (DataError) by the next submit() or flush().
// The destructor finishes the write in hand and the waiting one, so a run that stops on an
// exception (divergence, SIGTERM) still leaves its last checkpoint; a killed process leaves the
// last one completed, as a synchronous write killed half-way would.
#pragma once
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "siamese/train_state.hpp"

namespace siamese {

class CheckpointWriter {
public:
    explicit CheckpointWriter(std::string path);
    ~CheckpointWriter();
    CheckpointWriter(const CheckpointWriter&) = delete;
    CheckpointWriter& operator=(const CheckpointWriter&) = delete;

    void submit(TrainState state);
    void flush();
    long written() const;   // checkpoints written so far
    long replaced() const;  // snapshots replaced by a newer one before they were written

private:
    void run();
    void rethrow_locked();

    const std::string path_;
    mutable std::mutex m_;
    std::condition_variable cv_;
    std::optional<TrainState> waiting_;
    bool writing_ = false, stop_ = false;
    long written_ = 0, replaced_ = 0;
    std::exception_ptr error_;
    std::thread thread_;  // last: started once everything it reads exists
};

}  // namespace siamese
