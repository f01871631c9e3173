import Foundation

/// The distillation losses of `distill`, each with its gradient with respect to the student's
/// values (flat, in double precision), and the drift measures of its report.
///
/// Every MSE is divided by the teacher's mean square (`E[t²]`), so outputs and feature points of
/// different scales weigh alike and a loss of 1 means "as far off as predicting zeros".
public enum DistillLoss {
    /// `Σ (s − t)² / (n · max(E[t²], 1e-12))` and its gradient with respect to `s`.
    ///
    /// - Parameters:
    ///   - student: The student's values.
    ///   - teacher: The teacher's values (same count).
    public static func normalizedMSE(student: [Double], teacher: [Double]) -> (loss: Double, gradient: [Double]) {
        let n = Double(max(student.count, 1))
        let scale = max(teacher.reduce(0) { $0 + $1 * $1 } / n, 1e-12)
        var loss = 0.0
        var grad = [Double](repeating: 0, count: student.count)
        for i in student.indices {
            let d = student[i] - teacher[i]
            loss += d * d
            grad[i] = 2 * d / (n * scale)
        }
        return (loss / (n * scale), grad)
    }

    /// `KL(softmax(t) ‖ softmax(s))` averaged over the rows of the last axis (`classes` wide), and
    /// its gradient with respect to the student's logits `s` (`(softmax(s) − softmax(t)) / rows`).
    ///
    /// - Parameters:
    ///   - student: The student's logits, rows of `classes` values.
    ///   - teacher: The teacher's logits (same layout).
    ///   - classes: The size of the last axis.
    public static func kl(student: [Double], teacher: [Double], classes: Int) -> (loss: Double, gradient: [Double]) {
        let c = max(classes, 1)
        let rows = student.count / c
        var loss = 0.0
        var grad = [Double](repeating: 0, count: student.count)
        for r in 0..<rows {
            let base = r * c
            let ps = softmax(student, base, c), pt = softmax(teacher, base, c)
            let ls = logSoftmax(student, base, c), lt = logSoftmax(teacher, base, c)
            for j in 0..<c {
                if pt[j] > 0 { loss += pt[j] * (lt[j] - ls[j]) }
                grad[base + j] = (ps[j] - pt[j]) / Double(max(rows, 1))
            }
        }
        return (loss / Double(max(rows, 1)), grad)
    }

    /// `1 − cos(s, t)` over the flattened values (0 when identical in direction).
    public static func cosineDistance(_ s: [Double], _ t: [Double]) -> Double {
        var dot = 0.0, ns = 0.0, nt = 0.0
        for i in s.indices {
            dot += s[i] * t[i]
            ns += s[i] * s[i]
            nt += t[i] * t[i]
        }
        let den = (ns * nt).squareRoot()
        return den > 0 ? 1 - dot / den : (ns == nt ? 0 : 1)
    }

    /// Mean cosine similarity of the rows of the last axis (`width` wide): for embeddings, one
    /// cosine per token.
    public static func rowCosine(_ s: [Double], _ t: [Double], width: Int) -> Double {
        let w = max(width, 1)
        let rows = s.count / w
        guard rows > 0 else { return 1 }
        var total = 0.0
        for r in 0..<rows {
            let a = Array(s[(r * w)..<(r * w + w)]), b = Array(t[(r * w)..<(r * w + w)])
            total += 1 - cosineDistance(a, b)
        }
        return total / Double(rows)
    }

    private static func softmax(_ x: [Double], _ base: Int, _ c: Int) -> [Double] {
        let m = x[base..<(base + c)].max() ?? 0
        let e = (0..<c).map { Foundation.exp(x[base + $0] - m) }
        let z = e.reduce(0, +)
        return e.map { $0 / z }
    }

    private static func logSoftmax(_ x: [Double], _ base: Int, _ c: Int) -> [Double] {
        let m = x[base..<(base + c)].max() ?? 0
        let z = (0..<c).reduce(0.0) { $0 + Foundation.exp(x[base + $1] - m) }
        let lz = m + Foundation.log(z)
        return (0..<c).map { x[base + $0] - lz }
    }
}
