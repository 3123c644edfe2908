/// A force-directed 2D layout (Fruchterman–Reingold) with grid-accelerated
/// repulsion: nodes only push nodes in neighbouring cells, so an iteration
/// costs O(nodes + links). Deterministic for a seed (a seeded generator,
/// nodes in a fixed order); warm-started from the previous positions, so
/// one new host does not move the rest; pinned nodes stay where they are.
public struct ForceLayout: Sendable {
  public var seed: UInt64 = 42
  public var iterationsFromScratch = 50
  public var iterationsWarm = 15
  /// The ideal distance between linked nodes.
  public var spacing = 1.0

  public init(seed: UInt64 = 42) { self.seed = seed }

  /// Positions for `count` nodes joined by `edges` (index pairs).
  /// `previous[i]` warm-starts node i; `pinned[i]` fixes it.
  public func layout(
    count: Int, edges: [(Int, Int)], previous: [(Double, Double)?], pinned: [(Double, Double)?]
  ) -> [(x: Double, y: Double)] {
    guard count > 0 else { return [] }
    var rng = SplitMix64(seed: seed)
    var x = [Double](repeating: 0, count: count)
    var y = [Double](repeating: 0, count: count)
    let side = (Double(count)).squareRoot() * spacing * 2
    var known = 0
    var neighbours = [[Int]](repeating: [], count: count)
    for (a, b) in edges where a != b {
      neighbours[a].append(b)
      neighbours[b].append(a)
    }
    for i in 0..<count {
      if let p = pinned[i] ?? previous[i] {
        x[i] = p.0
        y[i] = p.1
        known += 1
      }
    }
    var placed = [Bool](repeating: false, count: count)
    for i in 0..<count where pinned[i] != nil || previous[i] != nil { placed[i] = true }
    // New nodes start next to a placed neighbour when they have one.
    for i in 0..<count where !placed[i] {
      if let n = neighbours[i].first(where: { placed[$0] }) {
        x[i] = x[n] + (rng.unit() - 0.5) * spacing
        y[i] = y[n] + (rng.unit() - 0.5) * spacing
      } else {
        x[i] = rng.unit() * side
        y[i] = rng.unit() * side
      }
      placed[i] = true
    }
    let warm = known * 2 >= count
    let iterations = warm ? iterationsWarm : iterationsFromScratch
    // Warm: a low temperature, so what was placed stays put and only the
    // newcomers (and their neighbours, a little) find their places.
    var temperature = warm ? spacing * 0.1 : side / 10
    let cooling = temperature / Double(iterations + 1)
    let k = spacing
    let k2 = k * k
    let cell = 2 * k
    var dx = [Double](repeating: 0, count: count)
    var dy = [Double](repeating: 0, count: count)
    var order = [Int](repeating: 0, count: count)
    for _ in 0..<iterations {
      // Bucket the nodes by cell (a counting sort: no hashing).
      var minX = Double.infinity, minY = Double.infinity, maxX = -Double.infinity, maxY = -Double.infinity
      for i in 0..<count {
        minX = min(minX, x[i])
        minY = min(minY, y[i])
        maxX = max(maxX, x[i])
        maxY = max(maxY, y[i])
      }
      // Clamped before the conversion to Int, which traps beyond Int's
      // range (pins far apart) and on NaN or infinity (positions gone so).
      let cols = Int(min(4095, max(0, (maxX - minX) / cell))) + 1
      let rows = Int(min(4095, max(0, (maxY - minY) / cell))) + 1
      var start = [Int](repeating: 0, count: cols * rows + 1)
      var cellOf = [Int](repeating: 0, count: count)
      for i in 0..<count {
        let c = Int(min(Double(cols - 1), max(0, (x[i] - minX) / cell)))
        let r = Int(min(Double(rows - 1), max(0, (y[i] - minY) / cell)))
        cellOf[i] = r * cols + c
        start[cellOf[i] + 1] += 1
      }
      for c in 0..<(cols * rows) { start[c + 1] += start[c] }
      var fill = start
      for i in 0..<count {
        order[fill[cellOf[i]]] = i
        fill[cellOf[i]] += 1
      }
      // Repulsion from nodes within the 3×3 cells around (through raw
      // buffers: this loop is most of the work).
      x.withUnsafeBufferPointer { x in
        y.withUnsafeBufferPointer { y in
          dx.withUnsafeMutableBufferPointer { dx in
            dy.withUnsafeMutableBufferPointer { dy in
              order.withUnsafeBufferPointer { order in
                start.withUnsafeBufferPointer { start in
                  cellOf.withUnsafeBufferPointer { cellOf in
                    let reach = cell * cell
                    for i in 0..<count {
                      let ci = cellOf[i]
                      let c = ci % cols
                      let r = ci / cols
                      let xi = x[i]
                      let yi = y[i]
                      var fx = 0.0
                      var fy = 0.0
                      for rr in max(0, r - 1)...min(rows - 1, r + 1) {
                        let lo = rr * cols + max(0, c - 1)
                        let hi = rr * cols + min(cols - 1, c + 1)
                        // Cells of one row are adjacent in `order`.
                        for o in start[lo]..<start[hi + 1] {
                          let j = order[o]
                          if j == i { continue }
                          var ddx = xi - x[j]
                          var ddy = yi - y[j]
                          var d2 = ddx * ddx + ddy * ddy
                          if d2 > reach { continue }
                          if d2 < 1e-9 {
                            // Two nodes on one spot: part them the same way every run.
                            ddx = i < j ? 0.01 : -0.01
                            ddy = 0
                            d2 = 1e-4
                          }
                          let f = k2 / d2
                          fx += ddx * f
                          fy += ddy * f
                        }
                      }
                      dx[i] = fx
                      dy[i] = fy
                    }
                  }
                }
              }
            }
          }
        }
      }
      // Attraction along the links.
      for (a, b) in edges where a != b {
        let ddx = x[a] - x[b]
        let ddy = y[a] - y[b]
        let d = (ddx * ddx + ddy * ddy).squareRoot()
        guard d > 0 else { continue }
        let f = d / k
        dx[a] -= ddx * f
        dy[a] -= ddy * f
        dx[b] += ddx * f
        dy[b] += ddy * f
      }
      for i in 0..<count where pinned[i] == nil {
        let d = (dx[i] * dx[i] + dy[i] * dy[i]).squareRoot()
        guard d > 0 else { continue }
        let step = min(d, temperature)
        x[i] += dx[i] / d * step
        y[i] += dy[i] / d * step
      }
      temperature = max(temperature - cooling, spacing * 0.01)
    }
    return (0..<count).map { (x: x[$0], y: y[$0]) }
  }
}

/// A small, fast, seedable generator (SplitMix64): the same seed gives the
/// same layout on every machine.
public struct SplitMix64: Sendable {
  var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  /// Uniform in [0, 1).
  public mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
  /// In 0..<n (with the slight bias of a modulo, fine for tests and jitter).
  public mutating func next(upTo n: UInt64) -> UInt64 { next() % n }
}
