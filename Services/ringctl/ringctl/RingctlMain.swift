import ArgumentParser
import RingctlCommands

/// The executable is the command tree of `RingctlCommands`, nothing more.
@main
extension Ringctl {}
