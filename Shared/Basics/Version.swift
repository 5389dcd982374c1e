/// Ringstore's version: what `--version` prints and Health reports.
public enum RingstoreVersion {
    public static let current = "0.1.0"
}
