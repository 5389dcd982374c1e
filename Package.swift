// swift-tools-version:6.1
import PackageDescription

/// One set of Swift settings for every Swift target: Swift 6 language mode
/// (strict concurrency) and warnings as errors, so a warning breaks the build.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .unsafeFlags(["-warnings-as-errors"]),
]

// Linux only: the ZeroMQ shim wakes poll loops with eventfd(2) and ringctl's
// standard streams go through Glibc, so no other platform is declared.
let package = Package(
    name: "ringstore",
    products: [
        .executable(name: "ringstore-placement", targets: ["ringstore-placement"]),
        .executable(name: "ringstore-lock", targets: ["ringstore-lock"]),
        .executable(name: "ringstore-node", targets: ["ringstore-node"]),
        .executable(name: "ringctl", targets: ["ringctl"]),
        .executable(name: "ringstore-protogen", targets: ["ringstore-protogen"]),
        .executable(name: "ringstore-bench-ring", targets: ["ringstore-bench-ring"]),
        .executable(name: "ringstore-bench-storage", targets: ["ringstore-bench-storage"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: - System libraries

        // libzmq's pkg-config file pulls in krb5-gssapi's `-isystem` flags, which
        // SwiftPM rejects with a warning on every build; the headers live in
        // /usr/include and the module map links -lzmq, so pkg-config adds nothing.
        // `make deps` checks `pkg-config --exists libzmq` before building.
        .systemLibrary(
            name: "CZeroMQ",
            path: "Shared/CZeroMQ",
            providers: [.apt(["libzmq3-dev"])]
        ),

        // MARK: - Libraries

        .systemLibrary(
            name: "CLibCrypto",
            path: "Shared/CLibCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),

        // The self-pipe signal handler SignalWatch installs (a C function, so
        // that it is async-signal-safe).
        .target(
            name: "CSignalPipe",
            path: "Shared/CSignalPipe"
        ),
        // Records the peer address of every accepted TCP connection (its own
        // accept4, which libzmq's calls bind to), for refusal logs.
        .target(
            name: "CAcceptLog",
            path: "Shared/CAcceptLog"
        ),
        // epoll and non-blocking accept for the RESP front door's listener.
        .target(
            name: "CEventLoop",
            path: "Shared/CEventLoop"
        ),
        .target(
            name: "RESP",
            path: "Shared/RESP"
        ),
        .target(
            name: "Basics",
            dependencies: ["CSignalPipe"],
            path: "Shared/Basics"
        ),
        .target(
            name: "Ring",
            dependencies: ["CLibCrypto"],
            path: "Shared/Ring"
        ),
        .target(
            name: "ZeroMQ",
            dependencies: ["CZeroMQ", "Basics"],
            path: "Shared/ZeroMQ"
        ),
        .target(
            name: "RingProtocol",
            dependencies: ["Ring", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/Protocol",
            exclude: ["proto"]
        ),
        .target(
            name: "RPC",
            dependencies: [
                "Basics",
                "CAcceptLog",
                "ZeroMQ",
                "RingProtocol",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Shared/RPC"
        ),
        .target(
            name: "ServiceHost",
            dependencies: [
                "Basics", "CEventLoop", "Etcd", "RPC", "RingProtocol", "ZeroMQ",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Shared/ServiceHost"
        ),
        // etcd's v3 API through its JSON gateway over POSIX sockets (Foundation
        // for JSON only): the replicated store behind placement and the lock
        // service in HA mode (issue 18).
        .target(
            name: "Etcd",
            path: "Shared/Etcd"
        ),
        // Leader election among a control-plane service's replicas through an
        // etcd lease, and the follower's refusal of what only the leader answers.
        .target(
            name: "ControlPlane",
            dependencies: [
                "Basics", "Etcd", "RPC", "ServiceHost",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Shared/ControlPlane"
        ),
        .target(
            name: "RingstoreClient",
            dependencies: ["Basics", "RPC", "RingProtocol", "Ring", "ZeroMQ"],
            path: "Shared/Client"
        ),
        .target(
            name: "PlacementService",
            dependencies: [
                "Basics", "ControlPlane", "Etcd", "RPC", "RingProtocol", "ServiceHost", "Ring",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Placement/PlacementService"
        ),
        .target(
            name: "LockService",
            dependencies: [
                "Basics", "ControlPlane", "Etcd", "RPC", "RingProtocol", "ServiceHost",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Services/Lock/LockService"
        ),
        .target(
            name: "StorageEngine",
            dependencies: [
                "CLibCrypto",
                "Ring",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ],
            path: "Services/StorageNode/StorageEngine"
        ),
        .target(
            name: "StorageNode",
            dependencies: [
                "Basics", "RESP", "RPC", "RingProtocol", "ServiceHost", "Ring", "StorageEngine", "ZeroMQ",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/StorageNode/StorageNode"
        ),
        .target(
            name: "BenchKit",
            dependencies: ["Basics", .product(name: "Histogram", package: "hdrhistogram-swift")],
            path: "Shared/BenchKit"
        ),
        .target(
            name: "RingctlCommands",
            dependencies: [
                "Basics",
                "RingstoreClient",
                "BenchKit",
                "Ring",
                // Pure: reads the node snapshots of a backup (SnapshotReader) and hashes files.
                "StorageEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/ringctl/RingctlCommands"
        ),

        // MARK: - Executables

        .executableTarget(
            name: "ringstore-placement",
            dependencies: [
                "PlacementService", "ServiceHost",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Placement/ringstore-placement"
        ),
        .executableTarget(
            name: "ringstore-lock",
            dependencies: [
                "LockService", "ServiceHost",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/Lock/ringstore-lock"
        ),
        .executableTarget(
            name: "ringstore-node",
            dependencies: [
                "StorageNode", "ServiceHost", "StorageEngine", "RPC",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Services/StorageNode/ringstore-node"
        ),
        .executableTarget(
            name: "ringctl",
            dependencies: [
                "RingctlCommands",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Services/ringctl/ringctl"
        ),
        .executableTarget(
            name: "ringstore-protogen",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Shared/ProtoGen"
        ),
        .executableTarget(
            name: "ringstore-bench-storage",
            dependencies: ["StorageEngine", "Ring", "BenchKit"],
            path: "Tests/Benchmarks/StorageBench"
        ),
        .executableTarget(
            name: "ringstore-bench-ring",
            dependencies: ["Basics", "Ring"],
            path: "Tests/Benchmarks/RingBench"
        ),

        // MARK: - Tests

        .target(
            name: "TestKit",
            dependencies: ["Basics", "Etcd", "RPC", "ZeroMQ", "BenchKit", "Ring", "RingstoreClient", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestKit"
        ),
        .testTarget(
            name: "ZeroMQTests",
            dependencies: ["ZeroMQ", "TestKit"],
            path: "Tests/ZeroMQTests"
        ),
        .testTarget(
            name: "RPCTests",
            dependencies: [
                "Basics", "CAcceptLog", "RPC", "RingProtocol", "ZeroMQ", "TestKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/RPCTests"
        ),
        .testTarget(
            name: "PlacementTests",
            dependencies: ["PlacementService", "RingProtocol", "Ring", "TestKit", "Basics"],
            path: "Tests/PlacementTests"
        ),
        .testTarget(
            name: "RingTests",
            dependencies: ["Ring", "TestKit"],
            path: "Tests/RingTests",
            exclude: ["Vectors"]
        ),
        .testTarget(
            name: "StorageEngineTests",
            dependencies: ["StorageEngine", "Ring", "TestKit", .product(name: "GRDB", package: "GRDB.swift")],
            path: "Tests/StorageEngineTests"
        ),
        .testTarget(
            name: "ClientTests",
            dependencies: ["RingstoreClient", "RingProtocol", "Ring"],
            path: "Tests/ClientTests"
        ),
        .testTarget(
            name: "RingctlTests",
            dependencies: [
                "RingctlCommands", "RingstoreClient", "Ring", "BenchKit", "TestKit", "RPC", "RingProtocol",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Tests/RingctlTests"
        ),
        .testTarget(
            name: "ServiceHostTests",
            dependencies: [
                "RPC", "ServiceHost", "TestKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ServiceHostTests"
        ),
        .testTarget(
            name: "RESPTests",
            dependencies: ["RESP"],
            path: "Tests/RESPTests"
        ),
        .testTarget(
            name: "StorageNodeTests",
            dependencies: ["StorageNode", "StorageEngine", "PlacementService", "RPC", "RingProtocol", "ZeroMQ", "TestKit", "Ring"],
            path: "Tests/StorageNodeTests"
        ),
        .testTarget(
            name: "LockTests",
            dependencies: ["LockService", "RingstoreClient", "RPC", "RingProtocol", "ZeroMQ", "TestKit"],
            path: "Tests/LockTests"
        ),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: ["ControlPlane", "Etcd", "TestKit", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ControlPlaneTests"
        ),
        .testTarget(
            name: "EtcdTests",
            dependencies: ["Etcd", "TestKit"],
            path: "Tests/EtcdTests"
        ),
        .testTarget(
            name: "ClusterTests",
            dependencies: [
                "Basics", "Etcd", "RPC", "RingProtocol", "ServiceHost", "ZeroMQ", "TestKit", "RingstoreClient", "Ring",
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            path: "Tests/ClusterTests",
            exclude: ["resp_clients.py", "status_page.py"]
        ),
    ]
)

for target in package.targets where target.type != .system {
    target.swiftSettings = (target.swiftSettings ?? []) + swiftSettings
}
