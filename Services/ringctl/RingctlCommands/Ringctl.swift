import ArgumentParser
import Basics

/// The `ringctl` command tree; the `ringctl` executable only calls `main()`.
public struct Ringctl: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "ringctl",
        abstract: "Operate a Ringstore cluster: data, locks, membership, the ring and its events.",
        version: RingstoreVersion.current,
        subcommands: [PutCommand.self, GetCommand.self, DelCommand.self, StatusCommand.self, MembersCommand.self, JoinCommand.self, LeaveCommand.self, RemoveCommand.self, RepairCommand.self, RingCommand.self, LockGroupCommand.self, WatchCommand.self, BenchCommand.self, KeygenCommand.self, BackupCommand.self, RestoreCommand.self]
    )

    public init() {}
}
