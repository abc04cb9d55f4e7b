import CNNG
import Synchronization

/// One `nng_aio` bridged to async/await: the only place NNG callbacks meet Swift continuations.
///
/// An instance serves one operation at a time (the owner awaits each). NNG invokes the
/// callback on its own threads, sometimes inline from the start call, so the continuation is
/// stored before the operation starts and the callback never blocks. A cancel that arrives
/// before the operation has started is remembered and applied right after it starts.
// Sendable without compiler proof, safe because `handle` is set once in init and freed only in deinit; all mutable state is behind `state`'s mutex.
final class AsyncAio: @unchecked Sendable {
    private(set) var handle: OpaquePointer!
    private let state = Mutex(State())

    private struct State {
        var continuation: UnsafeContinuation<Int32, Never>?
        var cancelled = false
        /// A second operation to start from the callback when the first succeeds.
        var next: (@Sendable (OpaquePointer) -> Void)?
    }

    init() throws {
        var aio: OpaquePointer?
        let box = Unmanaged.passUnretained(self).toOpaque()
        try NNG.check(nng_aio_alloc(&aio, { arg in
            guard let arg else { return }
            // Borrow without retaining: a +1 taken here could be the last reference once the
            // continuation resumes its task, and its release would run deinit (nng_aio_free)
            // on this callback thread, which waits for this very callback: a deadlock.
            // The owner's deinit, on its own thread, waits in nng_aio_free until we return.
            Unmanaged<AsyncAio>.fromOpaque(arg)._withUnsafeGuaranteedRef { $0.completed() }
        }, box), "nng_aio_alloc")
        handle = aio
    }

    deinit {
        // Waits for a callback in progress; never called from the callback itself because
        // the callback holds only an unretained reference.
        nng_aio_free(handle)
    }

    /// Re-arms for a new owner (pooled aios): forget an earlier owner's cancellation.
    func reset() {
        state.withLock { $0.cancelled = false }
    }

    /// Runs one NNG operation started by `start` and returns nng's result code (0 = success).
    /// `timeout` in milliseconds, or nil for none. Swift Task cancellation cancels the aio.
    func run(timeout: Int32?, _ start: (OpaquePointer) -> Void) async -> Int32 {
        await run(timeout: timeout, start, then: nil)
    }

    /// Runs `start`, then, once it succeeded, `next` on the same aio, started from NNG's
    /// callback thread; returns the first failure's code or the second operation's. A send
    /// followed by a receive costs one resume of the Swift task instead of two (each resume
    /// wakes a thread of the executor: the largest cost of a round trip on a small machine).
    func run(timeout: Int32?, _ start: (OpaquePointer) -> Void, then next: (@Sendable (OpaquePointer) -> Void)?) async -> Int32 {
        nng_aio_set_timeout(handle, timeout ?? NNG_DURATION_INFINITE)
        let aio = handle!
        return await withTaskCancellationHandler {
            await withUnsafeContinuation { continuation in
                state.withLock {
                    $0.continuation = continuation
                    $0.next = next
                }
                start(aio)
                if state.withLock({ $0.cancelled }) { nng_aio_cancel(aio) }
            }
        } onCancel: {
            state.withLock { $0.cancelled = true }
            nng_aio_cancel(self.handle)
        }
    }

    private func completed() {
        var result = nng_aio_result(handle)
        let followUp = state.withLock { state -> (@Sendable (OpaquePointer) -> Void)? in
            defer { state.next = nil }
            // Cancelled between the two operations: the second is never started.
            if result == 0, state.next != nil, state.cancelled { result = NNG.cancelledCode }
            return result == 0 ? state.next : nil
        }
        if let followUp {
            followUp(handle)
            if state.withLock({ $0.cancelled }) { nng_aio_cancel(handle) }
            return
        }
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(returning: result)
    }

    /// Takes the message a receive left in the aio (the caller now owns it).
    func takeMessage() -> OpaquePointer? {
        let message = nng_aio_get_msg(handle)
        nng_aio_set_msg(handle, nil)
        return message
    }

    /// Hands a message to the aio for a send (NNG owns it once the send succeeds).
    func setMessage(_ message: OpaquePointer) {
        nng_aio_set_msg(handle, message)
    }
}
