@testable import AisleFederated
import AisleRecommend
import AisleSync
@testable import AisleTraining
import AisleFeatures
import AisleModels
import AisleStore
import Foundation
import Testing

/// Federated training of the purchase-intent model on the Taobao slice split into ten stores by
/// shopper, every round's sum taken through real secure aggregation, against central training
/// on the pooled rows (the same objective, the same features) and each store's own training.
@Suite struct FederatedIntentTests {
    struct Split { var x: [[[Double]]]; var y: [[Bool]]; var testX: [[[Double]]]; var testY: [[Bool]] }

    static func split(stores: Int) throws -> Split {
        let dir = try TestSupport.temporaryDirectory()
        let store = try Store.open(at: URL(fileURLWithPath: try PurchaseIntentTests.taobaoStore(in: dir).store), readOnly: true)
        let (t, h, lookback) = (Int64(PurchaseIntentTests.cutoff), Int64(31 * 60), Int64(70 * 60))
        var s = Split(x: .init(repeating: [], count: stores), y: .init(repeating: [], count: stores), testX: .init(repeating: [], count: stores), testY: .init(repeating: [], count: stores))
        try store.database.read { db in
            for (k, at) in ((0..<4).map { t - 2 * h - Int64($0) * 600 } + [t]).enumerated() {
                let f = try IntentFeatures.rows(db, asOf: at, lookback: lookback)
                let buyers = try IntentFeatures.buyers(db, from: at, to: at + h)
                for (unit, row) in zip(f.units, f.rows) {
                    let i = Int(((unit.customer ?? unit.session ?? 0) % Int64(stores) + Int64(stores)) % Int64(stores))
                    if k < 4 { s.x[i].append(row); s.y[i].append(buyers.contains(unit)) } else { s.testX[i].append(row); s.testY[i].append(buyers.contains(unit)) }
                }
            }
        }
        return s
    }

    static func auc(_ m: LogisticRegression, _ x: [[Double]], _ y: [Bool]) -> Double { Metrics.auc(scores: x.map(m.probability), labels: y) ?? 0.5 }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func federatedIntentThroughSecureAggregationMatchesCentralTraining() throws {
        let stores = 10
        let data = try Self.split(stores: stores)
        let d = data.x[0].first?.count ?? 0
        let (l2, fixed) = (1e-2, FixedPoint(scale: 65_536))
        let pooledX = data.x.flatMap { $0 }, pooledY = data.y.flatMap { $0 }
        let testX = data.testX.flatMap { $0 }, testY = data.testY.flatMap { $0 }
        let central = LogisticRegression.fit(pooledX, pooledY, l2: l2 * Double(pooledX.count))

        /// One secure sum of the stores' vectors (real keys, shares, masks).
        func secureSum(_ vectors: [[Double]], round: UInt64) throws -> [Double] {
            var members = (0..<stores).map { SecAggParticipant(store: "s-\($0)", round: round) }
            var hub = SecAggAggregator(round: round, length: vectors[0].count * FixedPoint.wordsPerValue)
            for m in members { try hub.add(m.advert) }
            let roster = hub.roster()
            for i in members.indices { try hub.add(shares: try members[i].share(roster: roster, threshold: hub.threshold), from: members[i].store) }
            for i in members.indices { try hub.add(masked: try members[i].mask(fixed.encode(vectors[i]), shares: hub.shares(for: members[i].store)), from: members[i].store) }
            for m in members { try hub.add(try m.unmask(included: hub.included)) }
            return fixed.decode(try hub.sum())
        }

        let moments = try secureSum((0..<stores).map { FederatedLogistic.moments(data.x[$0], dimension: d) }, round: 1)
        var global = FederatedLogistic.initial(fromMoments: moments, dimension: d)
        var server = FederatedLogistic.ServerOptimizer(method: .fedAvg, rate: 1)
        for round in 0..<10 {
            // Each store: (rows × its change, rows); the hub sees only the sums.
            let vectors = (0..<stores).map { i -> [Double] in
                let delta = FederatedLogistic.localUpdate(global: global, data.x[i], data.y[i], steps: 1, learningRate: 1, l2: l2)
                return delta.map { $0 * Double(data.x[i].count) } + [Double(data.x[i].count)]
            }
            let sum = try secureSum(vectors, round: UInt64(round + 2))
            let mean = sum.dropLast().map { $0 / (sum.last ?? 1) }
            global = FederatedLogistic.with(global, parameters: server.step(FederatedLogistic.parameters(global), meanUpdate: mean))
        }
        let (aucCentral, aucFederated) = (Self.auc(central, testX, testY), Self.auc(global, testX, testY))
        let local = (0..<stores).map { i in LogisticRegression.fit(data.x[i], data.y[i], l2: l2 * Double(data.x[i].count)) }
        let localScores: [Double] = (0..<stores).flatMap { i in data.testX[i].map { local[i].probability($0) } }
        let aucLocal = Metrics.auc(scores: localScores, labels: testY) ?? 0
        // The smaller half of the stores (by training rows): each one's own shoppers, scored by
        // the federated model and by the store's own model.
        let smaller = (0..<stores).sorted { data.x[$0].count < data.x[$1].count }.prefix(stores / 2)
        let perStore = smaller.compactMap { i -> (federated: Double, local: Double)? in
            guard let f = Metrics.auc(scores: data.testX[i].map(global.probability), labels: data.testY[i]),
                let l = Metrics.auc(scores: data.testX[i].map(local[i].probability), labels: data.testY[i])
            else { return nil }
            return (f, l)
        }
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(max(1, v.count)) }
        let (smallFederated, smallLocal) = (mean(perStore.map(\.federated)), mean(perStore.map(\.local)))
        print("federated intent: central AUC \(aucCentral), federated \(aucFederated), local-only \(aucLocal); \(pooledX.count) train rows, \(testX.count) test")
        print("smaller half: mean AUC federated \(smallFederated), local-only \(smallLocal); federated ahead in \(perStore.filter { $0.federated > $0.local }.count) of \(perStore.count): \(perStore)")
        #expect(abs(aucFederated - aucCentral) <= 0.01, "central \(aucCentral), federated \(aucFederated)")
        // Per store the test windows hold few buyers (the slice's rate is 0.35 %): the mean is the measure.
        #expect(perStore.count == stores / 2 && smallFederated > smallLocal + 0.02, "\(perStore)")
        #expect(aucCentral > 0.65)
    }
}

/// What a federated model with differential privacy starts from: no store data, every feature
/// scaled by its nominal spread, and features whose spread is bounded by definition.
@Suite struct FederatedModelTests {
    @Test func blankModelsScaleEveryFeatureByItsNominalSpread() throws {
        var s = RoundSettings()
        (s.lookbackMinutes, s.horizonMinutes) = (60 * 1440, 30 * 1440)
        for model in FederatedModel.all {
            let blank = try #require(model.logistic(try model.blank(s)), "\(model.kind)")
            #expect(blank.weights == Array(repeating: 0, count: model.dimension) && blank.scales == model.nominalScales(s) && blank.scales.allSatisfy { $0 > 0 })
            // The payload gives the same model back; a zero scale or a short vector is refused.
            #expect(model.logistic(try model.payload(blank, s)) == blank && blank.means.allSatisfy { $0 == 0 })
            var bad = blank
            bad.scales[0] = 0
            #expect(model.logistic(try model.payload(bad, s)) == nil)
            bad = blank
            bad.means.removeLast()
            #expect(model.logistic(try model.payload(bad, s)) == nil)
        }
        // The ranker's horizon is whole days, and update rounds keep the global model's windows.
        #expect(FederatedModel.ranker.problem(s, global: nil) == nil)
        var odd = s
        odd.horizonMinutes = 2000
        #expect(FederatedModel.ranker.problem(odd, global: nil)?.contains("whole days") == true)
        #expect(FederatedModel.intent.problem(odd, global: try FederatedModel.intent.blank(s))?.contains("same") == true)
        #expect(FederatedModel.of(round: "ranker-moments")?.kind == "ranker" && FederatedModel.of(round: "intent")?.kind == "intent" && FederatedModel.of(round: "other") == nil)
    }

    /// Ranker payloads hold exactly one model: trees (older payloads have nothing else) or a
    /// linear one.
    @Test func rankerPayloadsHoldExactlyOneModel() throws {
        let d = Ranking.featureNames.count  // a linear ranker reads every feature
        let linear = LogisticRegression(weights: Array(repeating: 1, count: d), intercept: 0, means: Array(repeating: 0, count: d), scales: Array(repeating: 1, count: d))
        #expect(try JSONDecoder().decode(Ranker.self, from: JSONEncoder().encode(Ranker(linear: linear, horizonDays: 30))).linear == linear)
        var p = GradientBoostedTrees.Parameters()
        (p.trees, p.minLeaf) = (2, 1)
        let trees = String(decoding: try JSONEncoder().encode(GradientBoostedTrees.fit([[0], [1], [0], [1]], [false, true, false, true], parameters: p)), as: UTF8.self)
        let old = try JSONDecoder().decode(Ranker.self, from: Data(#"{"trees":\#(trees),"horizonDays":60}"#.utf8))
        #expect(old.trees != nil && old.linear == nil && old.horizonDays == 60)
        let linearJSON = String(decoding: try JSONEncoder().encode(linear), as: UTF8.self)
        for bad in [#"{"horizonDays":60}"#, #"{"trees":\#(trees),"linear":\#(linearJSON),"horizonDays":60}"#, #"{"linear":\#(linearJSON),"horizonDays":0}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(Ranker.self, from: Data(bad.utf8)) }
        }
    }

    /// A store whose tills record purchases and no views: its conversion rates stay at most 1.
    @Test func conversionRatesStayWithinOneWithoutViews() throws {
        let events = (0..<30).map { #"{"ts":\#(1_700_000_000 + $0 * 60),"type":"purchase","customer":"c\#($0 % 3)","item":"i\#($0 % 4)"}"# }
        let catalog = (0..<4).map { #"{"item":"i\#($0)","title":"item \#($0)","category":"k\#($0 % 2)"}"# }
        let store = try Store.open(at: URL(fileURLWithPath: try ModelsTests.store(events: events, catalog: catalog, in: try TestSupport.temporaryDirectory())), readOnly: true)
        let rows = try store.database.read { try IntentFeatures.rows($0, asOf: 1_700_000_000 + 30 * 60, lookback: 3600).rows }
        let conversion = ["item_conversion", "category_conversion", "carted_item_conversion"].compactMap(IntentFeatures.names.firstIndex)
        #expect(rows.count == 3 && conversion.count == 3)
        #expect(rows.allSatisfy { row in conversion.allSatisfy { row[$0] > 0 && row[$0] <= 1 } }, "\(rows)")
    }
}
