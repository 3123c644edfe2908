import Yams

extension YAMLValue {
  /// What `Yams.load(yaml:)` gives — maps as `[String: Any]`, lists as
  /// `[Any]`, scalars by their resolved type; nil for an empty document —
  /// except that a map key that is not a single value (`? [a, b]: 1`,
  /// `? a:`) is an error: Yams (6.2) stops the process on one, force
  /// unwrapping the key as a String. Found by bench/fuzz.sh (FuzzPolicy).
  public static func untyped(_ text: String, file: String) throws -> Any? {
    guard let node = try Yams.compose(yaml: text) else { return nil }
    try checkKeys(node, file: file)
    return node.any
  }

  private static func checkKeys(_ node: Node, file: String) throws(YAMLFileError) {
    switch node {
    case .mapping(let mapping):
      for (key, value) in mapping {
        guard case .scalar = key else {
          throw YAMLFileError(file: file, line: key.mark?.line ?? 1, problem: "a map key must be a single value")
        }
        try checkKeys(value, file: file)
      }
    case .sequence(let sequence):
      for element in sequence { try checkKeys(element, file: file) }
    default:
      break
    }
  }
}
