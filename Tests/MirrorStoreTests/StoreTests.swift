import Foundation
import MirrorStore
import TestSupport
import Testing

@Suite final class QueryTests {
  let db: PostgresTestDatabase
  let conn: PGConnection

  init() throws {
    db = try PostgresTestDatabase("query")
    conn = try db.connect()
    try conn.execute(
      "CREATE TABLE t (id bigint PRIMARY KEY, name text, score double precision, ok boolean, blob bytea)")
  }

  @Test func parameterisedQueryAndTypedDecoding() throws {
    try conn.query(
      "INSERT INTO t VALUES ($1, $2, $3, $4, $5)", [Int64(1), "ä'; DROP TABLE t; --", 2.5, true, PGBytes([0, 255, 7])])
    try conn.query("INSERT INTO t (id) VALUES ($1)", [Int64(2)])
    let rows = try conn.query("SELECT id, name, score, ok, blob FROM t ORDER BY id")
    #expect(rows.count == 2)
    let first = rows[0]
    #expect(try first.decode(Int64.self, "id") == 1)
    #expect(try first.decode(String.self, "name") == "ä'; DROP TABLE t; --")
    #expect(try first.decode(Double.self, "score") == 2.5)
    #expect(try first.decode(Bool.self, "ok") == true)
    #expect(try first.decode(PGBytes.self, "blob") == PGBytes([0, 255, 7]))
    #expect(try rows[1].decodeIfPresent(String.self, "name") == nil)
    let error = #expect(throws: PostgresError.self) { try rows[1].decode(String.self, "name") }
    #expect(error?.sqlState == .decodingFailed)
    #expect(throws: PostgresError.self) { try first.decode(Int.self, "name") }
  }

  @Test func byteaParametersGoInBinaryAndComeBackExactly() throws {
    // Every byte value, an empty value, and one larger than a page.
    let values: [[UInt8]] = [Array(0...255), [], [0], Array(repeating: 0x5C, count: 20_000)]
    try conn.query("INSERT INTO t (id, blob) VALUES (100, $1)", [PGBytes(values[0])])
    #expect(try conn.query("SELECT blob FROM t WHERE id = 100")[0].decode(PGBytes.self, 0).bytes == values[0])
    // A bytea[] parameter in array_send layout, unnested in order.
    let rows = try conn.query(
      "SELECT b, length(b) FROM unnest($1::bytea[]) WITH ORDINALITY AS u(b, i) ORDER BY i", [PGByteaArray(values)])
    #expect(try rows.rows.map { try $0.decode(PGBytes.self, 0).bytes } == values)
    #expect(try rows.rows.map { try $0.decode(Int.self, 1) } == values.map(\.count))
    // Text and binary parameters mixed in one statement; an empty array.
    let mixed = try conn.query(
      "SELECT $1::text, cardinality($2::bytea[]), $3::bigint", ["x", PGByteaArray([]), Int64(7)])
    #expect(try mixed[0].decode(String.self, 0) == "x")
    #expect(try mixed[0].decode(Int.self, 1) == 0)
    #expect(try mixed[0].decode(Int64.self, 2) == 7)
  }

  @Test func sqlErrorsCarrySQLState() throws {
    try conn.query("INSERT INTO t (id) VALUES (10)")
    let dup = #expect(throws: PostgresError.self) { try self.conn.query("INSERT INTO t (id) VALUES (10)") }
    #expect(dup?.sqlState == .uniqueViolation)
    let missing = #expect(throws: PostgresError.self) { try self.conn.query("SELECT * FROM nope") }
    #expect(missing?.sqlState == .undefinedTable)
    #expect(missing?.description.contains("nope") == true)
    let syntax = #expect(throws: PostgresError.self) { try self.conn.query("SELEC 1") }
    #expect(syntax?.sqlState == .syntaxError)
    #expect(conn.isHealthy, "an SQL error leaves the connection usable")
    #expect(try conn.query("SELECT 1").count == 1)
  }

  @Test func transactionRollsBackOnError() throws {
    struct Boom: Error {}
    #expect(throws: Boom.self) {
      try self.conn.transaction { c in
        try c.query("INSERT INTO t (id) VALUES (20)")
        throw Boom()
      }
    }
    #expect(try conn.query("SELECT 1 FROM t WHERE id = 20").isEmpty)
    try conn.transaction { c in try c.query("INSERT INTO t (id) VALUES (21)") }
    #expect(try conn.query("SELECT 1 FROM t WHERE id = 21").count == 1)
  }

  @Test func affectedRowCount() throws {
    try conn.query("INSERT INTO t (id) SELECT g FROM generate_series(100, 104) g")
    #expect(try conn.query("UPDATE t SET ok = true WHERE id >= 100").affected == 5)
  }
}

@Suite final class CopyTests {
  let db: PostgresTestDatabase
  let conn: PGConnection

  init() throws {
    db = try PostgresTestDatabase("copy")
    conn = try db.connect()
  }

  @Test func hundredThousandRowCopy() throws {
    try conn.execute("CREATE TABLE m (host text, ts bigint, value double precision)")
    let stored = try conn.copyIn("COPY m (host, ts, value) FROM STDIN") { w in
      for i in 0..<100_000 {
        w.field("host-\(i % 100)")
        w.field(Int64(i))
        w.field(Double(i) * 0.5)
        try w.endRow()
      }
    }
    #expect(stored == 100_000)
    let row = try conn.query("SELECT count(*), sum(ts), count(DISTINCT host) FROM m")[0]
    #expect(try row.decode(Int.self, 0) == 100_000)
    #expect(try row.decode(Int64.self, 1) == 4_999_950_000)
    #expect(try row.decode(Int.self, 2) == 100)
  }

  @Test func copyWritesNumbersExactlyAndPreparedRowsLoad() throws {
    try conn.execute("CREATE TABLE num (i bigint, d double precision)")
    let ints: [Int64] = [0, 7, -7, 10, -10, 1_234_567_890_123, .max, .min]
    let doubles: [Double] = [0, -0.0, 0.1, -2.5e-300, 1e300, .pi, .nan, .infinity, -.infinity]
    // An encoder encodes; the rows load later on the connection.
    var w = PGCopyEncoder()
    for (i, d) in zip(ints + ints.prefix(1), doubles) {
      w.field(i)
      w.field(d)
      w.nextRow()
    }
    #expect(try conn.copyIn("COPY num (i, d) FROM STDIN", encoded: w.bytes) == doubles.count)
    let rows = try conn.query("SELECT i, d FROM num")
    #expect(try rows.rows.map { try $0.decode(Int64.self, 0) } == ints + ints.prefix(1))
    let back = try rows.rows.map { try $0.decode(Double.self, 1) }
    #expect(zip(back, doubles).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) })
  }

  @Test func copyEscapesSpecialCharactersAndNulls() throws {
    try conn.execute("CREATE TABLE s (id int, v text)")
    let values: [String?] = ["tab\there", "line\nbreak", "back\\slash", "cr\rx", "\\N", "유니코드 ✓", nil, ""]
    try conn.copyIn("COPY s (id, v) FROM STDIN") { w in
      for (i, v) in values.enumerated() {
        w.field(i)
        w.field(v)
        try w.endRow()
      }
    }
    let rows = try conn.query("SELECT v FROM s ORDER BY id")
    #expect(try rows.rows.map { try $0.decodeIfPresent(String.self, 0) } == values)
  }

  @Test func badCopyRowFailsWholeCopyAndNothingIsStored() throws {
    try conn.execute("CREATE TABLE n (id int NOT NULL)")
    let error = #expect(throws: PostgresError.self) {
      try self.conn.copyIn("COPY n (id) FROM STDIN") { w in
        w.field(1)
        try w.endRow()
        w.field("not a number")
        try w.endRow()
      }
    }
    #expect(error?.sqlState == PostgresError.Code(rawValue: "22P02"))
    #expect(try conn.query("SELECT count(*) FROM n")[0].decode(Int.self, 0) == 0)
    #expect(conn.isHealthy)
  }

  @Test func clientErrorDuringCopyAbortsIt() throws {
    struct Stop: Error {}
    try conn.execute("CREATE TABLE a (id int)")
    #expect(throws: Stop.self) {
      try self.conn.copyIn("COPY a (id) FROM STDIN") { w in
        w.field(1)
        try w.endRow()
        throw Stop()
      }
    }
    #expect(try conn.query("SELECT count(*) FROM a")[0].decode(Int.self, 0) == 0)
  }
}

@Suite final class MigrationTests {
  let db: PostgresTestDatabase

  init() throws { db = try PostgresTestDatabase("migr") }

  @Test func migrationsAppliedTwiceAreANoOp() throws {
    let conn = try db.connect()
    let first = try MigrationRunner.migrate(conn, logger: Harness.logger)
    #expect(first.applied == Migration.all.map(\.version))
    let second = try MigrationRunner.migrate(conn, logger: Harness.logger)
    #expect(second.applied.isEmpty)
    #expect(try conn.query("SELECT count(*) FROM schema_migrations")[0].decode(Int.self, 0) == Migration.all.count)
    let roles = try conn.query("SELECT name FROM roles ORDER BY name").rows.map { try $0.decode(String.self, 0) }
    #expect(roles == ["admin", "operator", "viewer"])
    for table in ["hosts", "host_groups", "host_group_members", "users", "user_roles", "mirror_settings"] {
      #expect(try conn.query("SELECT to_regclass($1) IS NOT NULL", [table])[0].decode(Bool.self, 0), "\(table)")
    }
  }

  @Test func concurrentMigratorsApplyEachMigrationOnce() async throws {
    // Separate connections are separate server processes: the advisory lock
    // is what serialises them.
    let url = db.url
    let migrations =
      Migration.all + [
        Migration(version: 9001, name: "slow", sql: "SELECT pg_sleep(0.5); CREATE TABLE slow_one (id int);")
      ]
    let results = try await withThrowingTaskGroup(of: [Int].self) { group in
      for _ in 0..<4 {
        group.addTask {
          let conn = try PGConnection(url: url)
          return try MigrationRunner.migrate(conn, migrations: migrations, logger: Harness.logger).applied
        }
      }
      return try await group.reduce(into: []) { $0.append($1) }
    }
    let all = results.flatMap { $0 }
    #expect(all.sorted() == migrations.map(\.version).sorted(), "every migration applied exactly once: \(results)")
    #expect(results.filter { !$0.isEmpty }.count == 1)
  }

  @Test func timescaleIsDetectedAndRecorded() throws {
    let conn = try db.connect()
    let result = try MigrationRunner.migrate(conn, logger: Harness.logger)
    let available = try conn.query("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'").count > 0
    #expect(result.capabilities.timescale == available)
    #expect(try MigrationRunner.capabilities(conn).timescale == available)
    if !available {
      let error = #expect(throws: PostgresError.self) {
        try MigrationRunner.migrate(conn, timescale: .on, logger: Harness.logger)
      }
      #expect(error?.message.contains("timescaledb extension is not available") == true)
    }
    try MigrationRunner.migrate(conn, timescale: .off, logger: Harness.logger)
    #expect(
      try conn.query("SELECT value FROM mirror_settings WHERE key = 'timescaledb'")[0].decode(String.self, 0) == "off")
  }
}

@Suite struct ConnectionFailureTests {
  @Test func wrongPasswordIsAClearError() throws {
    let url = try PostgresTestDatabase.adminURL.replacingOccurrences(of: "mirror:mirror@", with: "mirror:hunter2@")
    let error = #expect(throws: PostgresError.self) { _ = try PGConnection(url: url) }
    #expect(error?.sqlState == .invalidPassword)
    #expect(error?.description.contains("password authentication failed") == true)
    #expect(error?.description.contains("hunter2") == false, "the password must not be in the error")
  }

  @Test func unreachableServerFailsWithinTheTimeout() throws {
    let start = ContinuousClock.now
    let url = "postgresql://mirror:x@127.0.0.1:\(Harness.freePort())/mirror"
    let error = #expect(throws: PostgresError.self) { _ = try PGConnection(url: url, connectTimeout: 2) }
    #expect(error?.sqlState == .connectionFailure)
    #expect(error?.description.contains("Connection refused") == true, "\(String(describing: error))")
    #expect(ContinuousClock.now - start < .seconds(5))
  }

  @Test func redactHidesPasswords() {
    #expect(redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db")
    #expect(redact("postgresql://u@h/db") == "postgresql://u@h/db")
    #expect(redact("host=h dbname=x") == "host=h dbname=x")
  }

  @Test func clientReconnectsAfterItsBackendIsKilled() async throws {
    let db = try PostgresTestDatabase("recon")
    let client = PostgresClient(url: db.url, applicationName: "recon-test", logger: Harness.logger)
    let pid = try await client.query("SELECT pg_backend_pid()")[0].decode(Int.self, 0)
    let admin = try db.connect()
    try admin.query("SELECT pg_terminate_backend($1)", [pid])
    let error = await #expect(throws: PostgresError.self) { try await client.query("SELECT 1") }
    #expect(error?.sqlState.isConnectionProblem == true || error?.sqlState == .adminShutdown)
    let newPid = try await client.query("SELECT pg_backend_pid()")[0].decode(Int.self, 0)
    #expect(newPid != pid)
  }
}

/// Statements are bounded: by the statement timeout, and by cancelling the
/// task that waits for them.
@Suite final class BoundedQueryTests {
  let db: PostgresTestDatabase

  init() throws { db = try PostgresTestDatabase("bounded") }

  @Test func aQueryOverTheStatementTimeoutFailsWithAClearError() async throws {
    let client = PostgresClient(url: db.url, statementTimeout: .milliseconds(300), logger: Harness.logger)
    let started = ContinuousClock.now
    let error = await #expect(throws: PostgresError.self) { try await client.query("SELECT pg_sleep(3)") }
    #expect(ContinuousClock.now - started < .seconds(2))
    #expect(error?.sqlState == .queryCanceled)
    #expect("\(error.map { "\($0)" } ?? "")".contains("statement timeout"), "\(String(describing: error))")
    // The connection is still good for the next statement.
    #expect(try await client.query("SELECT 1").rows.count == 1)
  }

  @Test func cancellingTheWaitingTaskCancelsTheStatement() async throws {
    let client = PostgresClient(url: db.url, logger: Harness.logger)
    _ = try await client.query("SELECT 1")
    let started = ContinuousClock.now
    let slow = Task { try await client.query("SELECT pg_sleep(20)") }
    try await Task.sleep(for: .milliseconds(300))
    slow.cancel()
    let result = await slow.result
    #expect(ContinuousClock.now - started < .seconds(5))
    guard case .failure(let error as PostgresError) = result else {
      Issue.record("the statement was not cancelled: \(result)")
      return
    }
    #expect(error.sqlState == .queryCanceled, "\(error)")
  }
}
