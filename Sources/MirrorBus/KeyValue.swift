import CNATS
import Foundation

/// A JetStream key-value bucket (the C type is `kvStore`): the latest value
/// of each key, kept by the server, for a restarted service or a new client
/// to start from at once.
public final class KeyValueStore: @unchecked Sendable {
  // Only used through libnats, which locks it.
  private let kv: OpaquePointer
  public let bucket: String

  init(kv: OpaquePointer, bucket: String) {
    self.kv = kv
    self.bucket = bucket
  }

  deinit { kvStore_Destroy(kv) }

  /// Stores `value` under `key`; returns the new revision. The C function
  /// is `kvStore_Put`.
  @discardableResult
  public func put(_ key: String, _ value: [UInt8]) async throws(NATSError) -> UInt64 {
    try await Blocking.run { () throws(NATSError) in
      var revision: UInt64 = 0
      let status = value.withUnsafeBytes { kvStore_Put(&revision, self.kv, key, $0.baseAddress, Int32($0.count)) }
      try natsCheck(status, "put \(key) in bucket \(self.bucket)")
      return revision
    }
  }

  /// The value of `key`, or nil when it has none. The C function is
  /// `kvStore_Get`.
  public func get(_ key: String) async throws(NATSError) -> [UInt8]? {
    try await Blocking.run { () throws(NATSError) -> [UInt8]? in
      var entry: OpaquePointer?
      let status = kvStore_Get(&entry, self.kv, key)
      if status == NATS_NOT_FOUND { return nil }
      try natsCheck(status, "get \(key) from bucket \(self.bucket)")
      defer { kvEntry_Destroy(entry) }
      let count = Int(kvEntry_ValueLen(entry))
      guard count > 0, let p = kvEntry_Value(entry) else { return [] }
      return [UInt8](UnsafeRawBufferPointer(start: p, count: count))
    }
  }
}

extension BusConnection {
  /// Binds to the bucket, creating it (one value per key, file storage)
  /// when it does not exist. The C functions are `js_KeyValue` and
  /// `js_CreateKeyValue`.
  /// On a cluster the bucket is kept by up to three servers.
  public func keyValue(bucket: String, maxValueSize: Int32 = -1) async throws(NATSError) -> KeyValueStore {
    let replicas = Int32(min(3, knownServers))
    return try await Blocking.run { () throws(NATSError) in
      var kv: OpaquePointer?
      if js_KeyValue(&kv, self.js, bucket) == NATS_OK, let kv { return KeyValueStore(kv: kv, bucket: bucket) }
      var config = kvConfig()
      kvConfig_Init(&config)
      let name = strdup(bucket)
      defer { free(name) }
      config.Bucket = UnsafePointer(name)
      config.History = 1
      config.MaxValueSize = maxValueSize
      config.StorageType = js_FileStorage
      config.Replicas = replicas
      try natsCheck(js_CreateKeyValue(&kv, self.js, &config), "create key-value bucket \(bucket)")
      return KeyValueStore(kv: kv!, bucket: bucket)
    }
  }
}
