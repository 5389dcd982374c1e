/// Comparisons of secrets (passwords, tokens) whose time does not depend on
/// where the bytes differ.
public enum ConstantTime {
    /// Whether `a` and `b` are the same bytes; reads every byte of the longer.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        for index in 0..<max(a.count, b.count) {
            difference |= (index < a.count ? a[index] : 0) ^ (index < b.count ? b[index] : 0)
        }
        return difference == 0
    }
}
