public import MirrorWire

extension RpcError {
  /// The answer to a request that failed with `error`: a payload that does
  /// not decode is the caller's mistake (`invalid_argument`); anything else
  /// is ours and may be retried (`unavailable`).
  public init(answering error: any Error) {
    if let e = error as? WireError {
      self.init(code: "invalid_argument", message: "cannot decode: \(e)")
    } else {
      self.init(code: "unavailable", message: "\(error)", retryable: true)
    }
  }
}
