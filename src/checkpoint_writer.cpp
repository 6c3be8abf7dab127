#include "siamese/checkpoint_writer.hpp"

#include <cstdio>
#include <utility>

#include "siamese/common.hpp"

namespace siamese {

CheckpointWriter::CheckpointWriter(std::string path) : path_(std::move(path)), thread_([this] { run(); }) {}

CheckpointWriter::~CheckpointWriter() {
    {
        std::lock_guard<std::mutex> lock(m_);
        stop_ = true;  // the thread writes what is waiting, then ends
    }
    cv_.notify_all();
    thread_.join();
    if (error_) {  // a destructor must not throw: say it instead
        try {
            std::rethrow_exception(error_);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "warning: the last checkpoint was not written: %s\n", e.what());
        }
    }
}

void CheckpointWriter::rethrow_locked() {
    if (!error_) return;
    std::exception_ptr e = std::exchange(error_, nullptr);
    std::rethrow_exception(e);
}

void CheckpointWriter::submit(TrainState state) {
    {
        std::lock_guard<std::mutex> lock(m_);
        rethrow_locked();
        if (waiting_) ++replaced_;
        waiting_ = std::move(state);
    }
    cv_.notify_all();
}

void CheckpointWriter::flush() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [this] { return !waiting_ && !writing_; });
    rethrow_locked();
}

long CheckpointWriter::written() const {
    std::lock_guard<std::mutex> lock(m_);
    return written_;
}

long CheckpointWriter::replaced() const {
    std::lock_guard<std::mutex> lock(m_);
    return replaced_;
}

void CheckpointWriter::run() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
        cv_.wait(lock, [this] { return waiting_ || stop_; });
        if (!waiting_) return;  // stopping, nothing left
        TrainState s = std::move(*waiting_);
        waiting_.reset();
        writing_ = true;
        lock.unlock();
        std::exception_ptr err;
        try {
            save_train_state(path_, s);
        } catch (...) {
            err = std::current_exception();
        }
        lock.lock();
        writing_ = false;
        if (err)
            error_ = err;
        else
            ++written_;
        cv_.notify_all();
    }
}

}  // namespace siamese
