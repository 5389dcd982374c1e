// ringstore-bench-storage: throughput of the storage engine, and a crash-test helper.
//
//   ringstore-bench-storage [--dir DIRECTORY] [--rows N]
//       Prints rows/s of apply() at several batch sizes and sync modes, point reads
//       and arc scans, on fresh databases under DIRECTORY (the system temporary
//       directory by default). Run in release mode.
//
//   ringstore-bench-storage crash-writer PATH full|normal BATCH_SIZE
//       Applies batches of deterministic records to the database at PATH forever,
//       printing `committed <n>` after each acknowledged batch; the crash-durability
//       test kills it with SIGKILL and checks the acknowledged batches.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    if arguments.first == "crash-writer" {
        try CrashWriter(arguments: Array(arguments.dropFirst())).run()
    } else {
        try StorageBenchmark(arguments: arguments).run()
    }
} catch {
    let message = Array("ringstore-bench-storage: \(error)\n".utf8)
    _ = message.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
    exit(1)
}
