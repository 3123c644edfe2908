/// glibc allocator settings for a process's start (malloc.h is not part of
/// the Glibc module, so `mallopt` is declared here).
public enum Malloc {
  /// One arena for all threads: for a process whose threads allocate
  /// little and rarely at once (every extra arena keeps its own touched
  /// pages resident).
  public static func oneArena() { arenas(1) }

  /// At most `count` arenas (each keeps its own free pages).
  public static func arenas(_ count: Int32) {
    _ = glibcMallopt(-8, count)  // M_ARENA_MAX
  }

  /// Freed memory stays with the process up to `bytes` (and blocks up to
  /// 32 MiB come from the heap, not from mmap): for a process that
  /// allocates and frees megabytes per unit of work, so that each round
  /// reuses pages instead of faulting in fresh zeroed ones.
  public static func keepFreed(upTo bytes: Int32) {
    _ = glibcMallopt(-3, 32 << 20)  // M_MMAP_THRESHOLD (its maximum on 64-bit)
    _ = glibcMallopt(-1, bytes)  // M_TRIM_THRESHOLD
  }
}

@_silgen_name("mallopt") private func glibcMallopt(_ parameter: Int32, _ value: Int32) -> Int32
