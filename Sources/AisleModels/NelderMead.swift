/// Derivative-free minimisation (Nelder & Mead 1965, standard coefficients) of a smooth function
/// of a few variables; restarted from its own optimum until a restart no longer improves it.
public enum NelderMead {
    public struct Result: Sendable {
        public var point: [Double]
        public var value: Double
        public var iterations: Int
    }

    public static func minimize(
        _ f: ([Double]) -> Double, from start: [Double], step: Double = 0.5, tolerance: Double = 1e-12, maxIterations: Int = 20_000
    ) -> Result {
        var best = run(f, start, step, tolerance, maxIterations)
        for _ in 0..<5 {
            let again = run(f, best.point, step / 4, tolerance, maxIterations)
            let improved = again.value < best.value - tolerance
            best = again.value < best.value ? Result(point: again.point, value: again.value, iterations: best.iterations + again.iterations) : best
            if !improved { break }
        }
        return best
    }

    private static func run(_ f: ([Double]) -> Double, _ start: [Double], _ step: Double, _ tolerance: Double, _ maxIterations: Int) -> Result {
        let n = start.count
        var simplex = [start] + (0..<n).map { i in var p = start; p[i] += step; return p }
        var values = simplex.map { v in value(f, v) }
        var iterations = 0
        while iterations < maxIterations {
            iterations += 1
            let order = values.indices.sorted { values[$0] < values[$1] }
            simplex = order.map { simplex[$0] }
            values = order.map { values[$0] }
            if abs(values[n] - values[0]) <= tolerance * (abs(values[0]) + tolerance) { break }
            // Or the simplex has shrunk to a point (the values then differ by rounding only).
            let spread = simplex[1...].reduce(0.0) { m, p in max(m, zip(p, simplex[0]).reduce(0.0) { max($0, abs($1.0 - $1.1)) }) }
            if spread < 1e-10 { break }
            let centroid = (0..<n).map { j in simplex[0..<n].reduce(0) { $0 + $1[j] } / Double(n) }
            func toward(_ t: Double) -> [Double] { (0..<n).map { centroid[$0] + t * (simplex[n][$0] - centroid[$0]) } }
            let reflected = toward(-1), fr = value(f, reflected)
            if fr < values[0] {
                let expanded = toward(-2), fe = value(f, expanded)
                (simplex[n], values[n]) = fe < fr ? (expanded, fe) : (reflected, fr)
            } else if fr < values[n - 1] {
                (simplex[n], values[n]) = (reflected, fr)
            } else {
                let contracted = fr < values[n] ? toward(-0.5) : toward(0.5)
                let fc = value(f, contracted)
                if fc < min(fr, values[n]) {
                    (simplex[n], values[n]) = (contracted, fc)
                } else {
                    for i in 1...n {
                        simplex[i] = (0..<n).map { simplex[0][$0] + 0.5 * (simplex[i][$0] - simplex[0][$0]) }
                        values[i] = value(f, simplex[i])
                    }
                }
            }
        }
        let i = values.indices.min { values[$0] < values[$1] } ?? 0
        return Result(point: simplex[i], value: values[i], iterations: iterations)
    }

    /// Non-finite values count as +∞, so the simplex walks away from them.
    private static func value(_ f: ([Double]) -> Double, _ p: [Double]) -> Double {
        let v = f(p)
        return v.isFinite ? v : .infinity
    }
}
