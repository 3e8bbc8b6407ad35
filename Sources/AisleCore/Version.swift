/// The release of this build.
public enum AisleVersion {
    public static let current = "0.1.0"
}
