// swift-tools-version:6.1
// The ring's key hash (MD5 through the OpenSSL shim in Shared/CLibCrypto)
// against swift-crypto's Insecure.MD5, the alternative that would drop the
// libssl-dev dependency. A package of its own, so that swift-crypto (and
// BoringSSL's build, about 75 s on 2 cores) is not part of every build:
// `make bench-md5` runs it.
import PackageDescription

let package = Package(
    name: "ringstore-bench-md5",
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // The ring's own shim (Sources/CLibCrypto links to Shared/CLibCrypto).
        .systemLibrary(name: "CLibCrypto", path: "Sources/CLibCrypto", pkgConfig: "libcrypto"),
        .executableTarget(
            name: "ringstore-bench-md5",
            dependencies: [
                "CLibCrypto",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: [.swiftLanguageMode(.v6)]
        ),
    ]
)
