// swift-tools-version:6.1
// Aisle: offline-first customer insight and recommendations for physical stores.
import PackageDescription

let strict: [SwiftSetting] = [.swiftLanguageMode(.v6)]
/// Numeric code (the encoder, model fitting) is optimised in debug builds too, so that `make test`
/// trains and evaluates on the real datasets in seconds rather than minutes.
let numeric: [SwiftSetting] = strict + [.unsafeFlags(["-O"], .when(configuration: .debug))]
/// The sync module is built without optimisation in release too: Swift 6.2's optimiser crashes
/// (signal 11 in LLVM's coroutine splitting) on its async round and sync code; it waits on the
/// network, not the CPU (its crypto is swift-crypto's, built optimised).
let unoptimised: [SwiftSetting] = strict + [.unsafeFlags(["-Onone"], .when(configuration: .release))]

let package = Package(
    name: "Aisle",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "aisled", targets: ["aisled"]),
        .executable(name: "aislectl", targets: ["aislectl"]),
        .executable(name: "aisle-hub", targets: ["aisle-hub"]),
        .executable(name: "aisle-loadgen", targets: ["aisle-loadgen"]),
        .executable(name: "aisle-encoder-bench", targets: ["aisle-encoder-bench"]),
        .executable(name: "aisle-fleet-sim", targets: ["aisle-fleet-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ],
    targets: [
        // Domain types, the interchange codec, time and text normalisation.
        .target(name: "AisleCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")], swiftSettings: strict),
        // Pure models: frequent itemsets and rules, BG/NBD, logistic regression, metrics (no I/O).
        .target(name: "AisleModels", swiftSettings: numeric),
        // Customer insight in use: per-customer insight (segment, BG/NBD, spend, churn), sentiment.
        .target(
            name: "AisleInsight",
            dependencies: ["AisleCore", "AisleText", "AisleModels", "AisleFeatures", "AisleStore", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: numeric),
        // Recommendations: candidates, learning-to-rank, explanations (issue 5).
        .target(
            name: "AisleRecommend",
            dependencies: ["AisleCore", "AisleStore", "AisleModels", "AisleFeatures", "AisleInsight", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: numeric),
        // The kiosk assistant: request intents, answers, hybrid catalog search (issue 6).
        .target(
            name: "AisleAssist",
            dependencies: ["AisleCore", "AisleStore", "AisleText", "AisleModels", "AisleInsight", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: numeric),
        // Trains every kind of model and registers it (aislectl train, the agent's schedule), and
        // takes global models from the hub after a local check.
        .target(
            name: "AisleTraining",
            dependencies: ["AisleCore", "AisleStore", "AisleText", "AisleModels", "AisleFeatures", "AisleInsight", "AisleRecommend", "AisleSync", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: strict),
        // Point-in-time features over the store, for training, evaluation and serving.
        .target(
            name: "AisleFeatures",
            dependencies: ["AisleStore", "AisleModels", .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: numeric),
        // zlib, for reading .gz files directly.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // SQLite schema, migrations and queries.
        .target(
            name: "AisleStore",
            dependencies: [
                "AisleCore", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict),
        // Importers, validation, cleaning, pseudonymisation.
        .target(
            name: "AisleIngest",
            dependencies: [
                "AisleCore", "AisleStore", "CZlib",
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        // The on-box sentence encoder: tokenizer, model files (issue 3).
        .target(
            name: "AisleText",
            dependencies: ["AisleCore", "COpenBLAS", "CAisleKernels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: numeric),
        // Int8 matrix kernels (AVX-512 VNNI, AVX2, NEON, scalar), chosen at run time. Optimised
        // in every configuration: SwiftPM builds C at -O0 in debug, far too slow to test with.
        .target(name: "CAisleKernels", cSettings: [.unsafeFlags(["-O2"])]),
        // OpenBLAS (cblas_sgemm) for the float matrix products.
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // TOML configuration of the agent and the hub, with key-by-key validation.
        .target(
            name: "AisleConfig",
            dependencies: ["AisleCore", .product(name: "TOMLKit", package: "TOMLKit")],
            swiftSettings: strict),
        // HTTP over the Unix socket: routes, metrics, request limits, logging.
        .target(
            name: "AisleServe",
            dependencies: [
                "AisleCore", "AisleStore", "AisleIngest", "AisleConfig", "AisleText", "AisleInsight", "AisleRecommend", "AisleTraining", "AisleAssist", "AisleSync",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict),
        // The store ↔ HQ wire protocol (sync/PROTOCOL.md): envelopes, messages, signed model
        // manifests; the store's outbox and its side of the exchange.
        .target(
            name: "AisleSync",
            dependencies: [
                "AisleCore", "AisleStore", "AisleClient", "AisleFederated",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: unoptimised),
        // Federated learning: Shamir sharing, secure aggregation (Bonawitz et al. 2017), fixed
        // point, the Rényi DP accountant, federated logistic regression (FedAvg, FedAdam).
        .target(
            name: "AisleFederated",
            dependencies: ["AisleModels", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: numeric),
        // The HQ aggregator: its database, the protocol's hub side, the admin operations.
        .target(
            name: "AisleHub",
            dependencies: [
                "AisleCore", "AisleConfig", "AisleServe", "AisleSync", "AisleFederated", "AisleModels", "AisleTraining",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "aisled",
            dependencies: [
                "AisleServe", "AisleConfig",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "aislectl",
            dependencies: [
                "AisleCore", "AisleStore", "AisleIngest", "AisleConfig", "AisleServe", "AisleText", "AisleModels", "AisleFeatures", "AisleInsight", "AisleRecommend", "AisleTraining", "AisleAssist", "AisleSync",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ],
            swiftSettings: strict),
        .executableTarget(
            name: "aisle-hub",
            dependencies: [
                "AisleHub", "AisleConfig", "AisleCore", "AisleSync",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict),
        // HTTP/1.1 client over a Unix socket or TCP (TLS when asked), for tools, tests and sync.
        .target(
            name: "AisleClient",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict),
        // Open-loop HTTP load generator over a Unix socket (tools/, used by `make bench`).
        .executableTarget(
            name: "aisle-loadgen",
            dependencies: [.product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/loadgen",
            swiftSettings: strict),
        // The fleet simulation: real agents and a real hub on loopback, federated rounds of the
        // purchase-intent model over UCI Online Retail split into stores (`make fleet`).
        .executableTarget(
            name: "aisle-fleet-sim",
            dependencies: [
                "AisleCore", "AisleStore", "AisleFeatures", "AisleInsight", "AisleModels", "AisleFederated", "AisleRecommend", "AisleSync", "AisleTraining",
                .product(name: "ArgumentParser", package: "swift-argument-parser"), .product(name: "GRDB", package: "GRDB.swift"),
            ],
            path: "tools/fleet-sim",
            swiftSettings: strict),
        // Encoder timing, side by side with ONNX Runtime (tools/bench/onnx, `make bench`).
        .executableTarget(
            name: "aisle-encoder-bench",
            dependencies: ["AisleText", "AisleCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "tools/encoder-bench",
            swiftSettings: strict),
        .testTarget(
            name: "AisleTests",
            dependencies: [
                "AisleCore", "AisleStore", "AisleIngest", "AisleConfig", "AisleServe", "AisleHub", "AisleClient", "AisleText", "AisleModels", "AisleFeatures", "AisleInsight", "AisleRecommend", "AisleTraining", "AisleAssist", "AisleSync", "AisleFederated",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict),
    ]
)
