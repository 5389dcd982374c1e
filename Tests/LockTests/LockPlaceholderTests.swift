import Testing

// Replaced by the lock service's tests.
