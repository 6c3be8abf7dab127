#include "fiber.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace emu {

namespace {
constexpr size_t kStackBytes = 128 * 1024;  // device code's frames are small; lambdas and arrays of a few KB

size_t page_bytes() {
    static const size_t p = size_t(sysconf(_SC_PAGESIZE));
    return p;
}
size_t slot_bytes() { return kStackBytes + page_bytes(); }  // a guard page, then the stack
}  // namespace

#if defined(__x86_64__)
extern "C" void emu_switch(void** save_sp, void* load_sp);
extern "C" void emu_trampoline();
// emu_switch: push the System V callee-saved registers and the MXCSR / x87 control words, save
// the stack pointer, load the other, pop the same. emu_trampoline: a new fiber's first return
// lands here with entry in r13 and its argument in r12, the stack 16-byte aligned for the call.
asm(R"(
    .text
    .globl emu_switch
    .type emu_switch, @function
emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch, .-emu_switch
    .globl emu_trampoline
    .type emu_trampoline, @function
emu_trampoline:
    movq %r12, %rdi
    callq *%r13
    ud2
    .size emu_trampoline, .-emu_trampoline
    .section .note.GNU-stack,"",@progbits
    .text
)");

struct FiberContext {
    void* sp = nullptr;
    void* scheduler_sp = nullptr;
};

void FiberStacks::start(size_t i, void (*entry)(void*), void* arg) {
    char* top = base_ + (i + 1) * slot_bytes();  // page-aligned, so 16-byte aligned
    auto* frame = reinterpret_cast<uint64_t*>(top - 64);
    uint32_t mxcsr = 0;
    uint16_t fpucw = 0;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    frame[0] = uint64_t(mxcsr) | (uint64_t(fpucw) << 32);
    frame[1] = 0;                                         // r15
    frame[2] = 0;                                         // r14
    frame[3] = reinterpret_cast<uint64_t>(entry);         // r13
    frame[4] = reinterpret_cast<uint64_t>(arg);           // r12
    frame[5] = 0;                                         // rbx
    frame[6] = 0;                                         // rbp
    frame[7] = reinterpret_cast<uint64_t>(&emu_trampoline);  // where the first switch returns to
    contexts_[i].sp = frame;
}
void FiberStacks::resume(size_t i) { emu_switch(&contexts_[i].scheduler_sp, contexts_[i].sp); }
void FiberStacks::suspend(size_t i) { emu_switch(&contexts_[i].sp, contexts_[i].scheduler_sp); }

#else  // ucontext: portable, slower

struct FiberContext {
    ucontext_t self, scheduler;
};

void FiberStacks::start(size_t i, void (*entry)(void*), void* arg) {
    FiberContext& c = contexts_[i];
    getcontext(&c.self);
    c.self.uc_stack.ss_sp = base_ + i * slot_bytes() + page_bytes();
    c.self.uc_stack.ss_size = kStackBytes;
    c.self.uc_link = nullptr;
    // makecontext passes ints: the pointer in two halves.
    const auto u = reinterpret_cast<uintptr_t>(arg);
    const auto e = reinterpret_cast<uintptr_t>(entry);
    makecontext(&c.self, reinterpret_cast<void (*)()>(+[](unsigned elo, unsigned ehi, unsigned lo, unsigned hi) {
                    auto f = reinterpret_cast<void (*)(void*)>((uintptr_t(ehi) << 32) | elo);
                    f(reinterpret_cast<void*>((uintptr_t(hi) << 32) | lo));
                    std::abort();  // a fiber never returns: it suspends for good
                }),
                4, unsigned(e), unsigned(e >> 32), unsigned(u), unsigned(u >> 32));
}
void FiberStacks::resume(size_t i) { swapcontext(&contexts_[i].scheduler, &contexts_[i].self); }
void FiberStacks::suspend(size_t i) { swapcontext(&contexts_[i].self, &contexts_[i].scheduler); }
#endif

void FiberStacks::reserve(size_t stacks) {
    if (stacks <= count_) return;
    if (base_) munmap(base_, mapped_);
    delete[] contexts_;
    mapped_ = stacks * slot_bytes();
    void* p = mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    base_ = static_cast<char*>(p);
    for (size_t i = 0; i < stacks; ++i)
        if (mprotect(base_ + i * slot_bytes(), page_bytes(), PROT_NONE) != 0) throw std::runtime_error("mprotect failed");
    contexts_ = new FiberContext[stacks];
    count_ = stacks;
}

FiberStacks::~FiberStacks() {
    if (base_) munmap(base_, mapped_);
    delete[] contexts_;
}

}  // namespace emu
