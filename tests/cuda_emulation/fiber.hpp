// Fibers for the emulated blocks: every thread of a block is one, on its own stack, and the
// scheduler switches to each in turn until it reaches a barrier or returns. On x86-64 a switch
// saves and restores the callee-saved registers, the stack pointer and the FP control words
// (about 10 ns); elsewhere ucontext (which also saves the signal mask: a system call a switch).
#pragma once
#include <cstddef>

namespace emu {

struct FiberContext;

// `stacks` fibers' stacks of `bytes` each, a guard page below each (an overflow faults at once).
class FiberStacks {
public:
    FiberStacks() = default;
    ~FiberStacks();
    FiberStacks(const FiberStacks&) = delete;
    FiberStacks& operator=(const FiberStacks&) = delete;
    void reserve(size_t stacks);
    // Prepares fiber i to start entry(arg) at its next resume, from an empty stack.
    void start(size_t i, void (*entry)(void*), void* arg);
    // Switches from the scheduler into fiber i; returns when it calls suspend().
    void resume(size_t i);
    // Called on fiber i's own stack: back to the scheduler (resume(i) continues after this call).
    void suspend(size_t i);
    size_t size() const { return count_; }

private:
    char* base_ = nullptr;
    size_t count_ = 0, mapped_ = 0;
    FiberContext* contexts_ = nullptr;
};

}  // namespace emu
