// swift-tools-version:6.0
import PackageDescription
let package = Package(
    name: "nioping",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.0")],
    targets: [.executableTarget(name: "nioping", dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")])]
)
