public import MirrorWire

/// Diffs between scenes, and applying them: a client holding scene N
/// applies diff N→N+1 and has exactly scene N+1 (nodes and links kept in id
/// order on both sides).
public enum SceneDiffer {
  /// What changed from `old` to `new`, numbered old.sequence + 1; nil when
  /// nothing did.
  public static func diff(from old: Scene, to new: Scene) -> SceneDiff? {
    var d = SceneDiff(sequence: old.sequence + 1, baseSequence: old.sequence, generatedAtUnixMs: new.generatedAtUnixMs)
    // Same ids in the same order (the usual interval): compare in place.
    if old.nodes.count == new.nodes.count, zip(old.nodes, new.nodes).allSatisfy({ $0.id == $1.id }) {
      for (o, n) in zip(old.nodes, new.nodes) where o != n { d.upsertedNodes.append(n) }
    } else {
      var oldNodes: [String: SceneNode] = [:]
      oldNodes.reserveCapacity(old.nodes.count)
      for n in old.nodes { oldNodes[n.id] = n }
      for n in new.nodes {
        if let o = oldNodes.removeValue(forKey: n.id), o == n { continue }
        d.upsertedNodes.append(n)
      }
      d.removedNodes = oldNodes.keys.sorted()
    }
    if old.links.count == new.links.count, zip(old.links, new.links).allSatisfy({ $0.id == $1.id }) {
      for (o, l) in zip(old.links, new.links) where o != l { d.upsertedLinks.append(l) }
    } else {
      var oldLinks: [String: SceneLink] = [:]
      oldLinks.reserveCapacity(old.links.count)
      for l in old.links { oldLinks[l.id] = l }
      for l in new.links {
        if let o = oldLinks.removeValue(forKey: l.id), o == l { continue }
        d.upsertedLinks.append(l)
      }
      d.removedLinks = oldLinks.keys.sorted()
    }
    d.fullRefresh = old.rooms != new.rooms || old.racks != new.racks
    if d.upsertedNodes.isEmpty, d.removedNodes.isEmpty, d.upsertedLinks.isEmpty, d.removedLinks.isEmpty,
      !d.fullRefresh
    {
      return nil
    }
    return d
  }

  public enum ApplyError: Error, Equatable {
    /// The diff is not for this scene: fetch the full scene.
    case gap(have: UInt64, diffBase: UInt64)
    case fullRefresh
  }

  /// The scene after `diff`; throws when the client must fetch the whole
  /// scene instead.
  public static func apply(_ diff: SceneDiff, to scene: Scene) throws(ApplyError) -> Scene {
    guard diff.baseSequence == scene.sequence else { throw .gap(have: scene.sequence, diffBase: diff.baseSequence) }
    guard !diff.fullRefresh else { throw .fullRefresh }
    var out = scene
    out.sequence = diff.sequence
    out.generatedAtUnixMs = diff.generatedAtUnixMs
    var nodes: [String: SceneNode] = [:]
    for n in scene.nodes { nodes[n.id] = n }
    for id in diff.removedNodes { nodes[id] = nil }
    for n in diff.upsertedNodes { nodes[n.id] = n }
    out.nodes = nodes.values.sorted { $0.id < $1.id }
    var links: [String: SceneLink] = [:]
    for l in scene.links { links[l.id] = l }
    for id in diff.removedLinks { links[id] = nil }
    for l in diff.upsertedLinks { links[l.id] = l }
    out.links = links.values.sorted { $0.id < $1.id }
    return out
  }
}
