/// How long a call may take and how it is retried.
///
/// Only idempotent methods are retried (on UNAVAILABLE, or when an attempt's
/// own timeout passes without an answer), with exponential backoff and jitter,
/// all within `timeout`. A request that never left this process (no connection
/// yet) is safe to retry for any method, and the client waits for the
/// connection until the deadline.
public struct CallOptions: Sendable {
    /// The whole call's deadline, retries included.
    public var timeout: Duration
    /// For idempotent methods: give up on one attempt after this long and try
    /// again (a lost connection loses its requests). `nil`: one attempt may use
    /// the whole timeout.
    public var attemptTimeout: Duration?
    /// For idempotent methods: the most attempts made.
    public var maxAttempts: Int
    /// The first pause between attempts; doubled each time up to `maxBackoff`.
    public var initialBackoff: Duration
    public var maxBackoff: Duration

    public init(timeout: Duration = .seconds(5), attemptTimeout: Duration? = nil, maxAttempts: Int = 5,
                initialBackoff: Duration = .milliseconds(20), maxBackoff: Duration = .seconds(1)) {
        self.timeout = timeout
        self.attemptTimeout = attemptTimeout
        self.maxAttempts = max(1, maxAttempts)
        self.initialBackoff = initialBackoff
        self.maxBackoff = maxBackoff
    }

    public static let `default` = CallOptions()
}
