import CommandRouterCore
import Crypto
import Foundation
import Logging
import MirrorBus
import MirrorService
import MirrorStore
import MirrorWire
import TestSupport
import Testing

@testable import ConsoleCore

/// Console 2/2 through its API: browser keys, prepared and signed commands,
/// a fresh code for a dangerous scope, the users' administration; and the
/// relay of command output and twin diffs to the browsers that watch them.
extension ConsoleAPITests {
  /// A code for the step after the current one: accepted now (clock drift
  /// allowance) and fresh after a login with the current one.
  static func nextCode(_ secret: String) -> String {
    RFC6238.code(secret: secret, at: Date().addingTimeInterval(30))
  }

  @Test func aBrowserKeySignsCommandsOnlyAfterAFreshCode() async throws {
    try await withConsole { port, _, _ in
      let browser = ConsoleClient(port: port)
      let secret = try #require(try await browser.logIn("ada", "correct horse battery"))
      let key = Curve25519.Signing.PrivateKey()
      let publicKey = Data(key.publicKey.rawRepresentation).base64EncodedString()
      // No fresh code, no key.
      let wrong = try await browser.send("POST", "/api/v1/keys", json: ["publicKey": publicKey, "code": "000000"])
      #expect(wrong.status == 403 && wrong.json["error"] as? String == "totp_required", "\(wrong.text)")
      let added = try await browser.send(
        "POST", "/api/v1/keys", json: ["publicKey": publicKey, "label": "test", "code": Self.nextCode(secret)])
      let keyID = try #require(added.json["keyId"] as? String, "\(added.text)")
      #expect(try await browser.send("GET", "/api/v1/keys").text.contains(keyID))

      // An unknown key is refused before anything is built.
      var prepare: [String: Any] = [
        "target": ["kind": "hosts", "hosts": ["node1"]], "action": ["argv": ["echo", "hi"]], "reason": "test",
        "keyId": "not-a-key",
      ]
      let unknown = try await browser.send("POST", "/api/v1/commands/prepare", json: prepare)
      #expect(unknown.status == 403 && unknown.json["error"] as? String == "unknown_key", "\(unknown.text)")
      prepare["keyId"] = keyID
      let prepared = try await browser.send("POST", "/api/v1/commands/prepare", json: prepare)
      let bytes = try #require((prepared.json["request"] as? String).flatMap { Data(base64Encoded: $0) })
      #expect(prepared.json["dangerous"] as? Bool == false && prepared.json["hosts"] as? [String] == ["node1"])
      let request = try CommandRequest(decoding: [UInt8](bytes))
      #expect(request.requester == "ada" && request.operatorKeyId == "ada/\(keyID)" && request.reason == "test")

      // Signed by the browser's key: the router verifies and dispatches.
      let signature = try key.signature(for: bytes).base64EncodedString()
      let sent = try await browser.send(
        "POST", "/api/v1/commands", json: ["request": bytes.base64EncodedString(), "signature": signature])
      #expect(sent.json["state"] as? String == "dispatched", "\(sent.text)")
      #expect(sent.json["commandId"] as? String == request.id)
      // Someone else's signature over the same bytes: the router denies it.
      let other = try Curve25519.Signing.PrivateKey().signature(for: bytes).base64EncodedString()
      let again = try await browser.send("POST", "/api/v1/commands/prepare", json: prepare)
      let bytes2 = try #require((again.json["request"] as? String).flatMap { Data(base64Encoded: $0) })
      let forged = try await browser.send(
        "POST", "/api/v1/commands",
        json: [
          "request": bytes2.base64EncodedString(), "signature": try key.signature(for: bytes).base64EncodedString(),
        ])
      #expect(forged.json["state"] as? String == "denied", "\(forged.text)")
      _ = other
      // A revoked key signs nothing the router accepts.
      let third = try await browser.send("POST", "/api/v1/commands/prepare", json: prepare)
      let bytes3 = try #require((third.json["request"] as? String).flatMap { Data(base64Encoded: $0) })
      #expect(try await browser.send("POST", "/api/v1/keys/\(keyID)/revoke").status == 204)
      let revoked = try await browser.send(
        "POST", "/api/v1/commands",
        json: [
          "request": bytes3.base64EncodedString(), "signature": try key.signature(for: bytes3).base64EncodedString(),
        ])
      #expect(revoked.json["state"] as? String == "denied", "\(revoked.text)")
      #expect((revoked.json["reason"] as? String ?? "").contains("unauthenticated"), "\(revoked.text)")

      // The history filters by user and state; one command opens with its record.
      let mine = try await browser.send("GET", "/api/v1/commands?user=ada&state=dispatched")
      let ids = (mine.json["commands"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
      #expect(ids.contains(request.id), "\(mine.text)")
      let one = try await browser.send("GET", "/api/v1/commands/\(request.id)")
      #expect((one.json["command"] as? [String: Any])?["requester"] as? String == "ada", "\(one.text)")
      #expect(try await browser.send("GET", "/api/v1/commands?state=nonsense").status == 400)

      // A viewer can neither register a key nor prepare a command.
      let viewer = ConsoleClient(port: port)
      try await viewer.logIn("vic", "viewer password 1")
      #expect(try await viewer.send("POST", "/api/v1/keys", json: ["publicKey": publicKey, "code": "1"]).status == 403)
      #expect(try await viewer.send("POST", "/api/v1/commands/prepare", json: prepare).status == 403)
      #expect(try await viewer.send("POST", "/api/v1/alerts/x/ack", json: [:]).status == 403)
      #expect(try await viewer.send("POST", "/api/v1/silences", json: ["host": "*", "minutes": 5]).status == 403)
      #expect(try await viewer.send("GET", "/api/v1/users").status == 403)
    }
  }

  @Test func aDangerousScopeNeedsAFreshCodeAtPrepareAndAtSubmit() async throws {
    try await withConsole({ $0.confirmAbove = 0 }) { port, _, _ in
      let browser = ConsoleClient(port: port)
      let secret = try #require(try await browser.logIn("ada", "correct horse battery"))
      let accounts = Accounts(database: PostgresClient(url: db.url, logger: Harness.logger))
      let ada = try #require(try await accounts.find("ada"))
      let key = Curve25519.Signing.PrivateKey()
      let keyID = try await accounts.addKey(
        userID: ada.id, publicKey: [UInt8](key.publicKey.rawRepresentation), label: "test")
      let prepare: [String: Any] = [
        "target": ["kind": "all"], "action": ["argv": ["echo", "hi"]], "reason": "everyone", "keyId": keyID,
      ]
      let refused = try await browser.send("POST", "/api/v1/commands/prepare", json: prepare)
      #expect(refused.status == 403 && refused.json["error"] as? String == "totp_required", "\(refused.text)")
      // Built and signed without the console's prepare: refused at submit.
      var own = CommandRequest(
        id: UUID().uuidString.lowercased(), target: CommandTarget(kind: .all), action: CommandAction(argv: ["true"]),
        timeoutMs: 5000, requester: "ada", reason: "sneaky", submittedAtUnixMs: Date().unixMilliseconds,
        operatorKeyId: "ada/\(keyID)")
      own.operatorSignature = [UInt8](try key.signature(for: Identity.signedBytes(own)))
      let sneaky = try await browser.send(
        "POST", "/api/v1/commands", json: ["request": Data(own.encode()).base64EncodedString()])
      #expect(sneaky.status == 403 && sneaky.json["error"] as? String == "totp_required", "\(sneaky.text)")
      // With a fresh code: prepared, marked dangerous, submitted once.
      var confirmed = prepare
      confirmed["code"] = Self.nextCode(secret)
      let ok = try await browser.send("POST", "/api/v1/commands/prepare", json: confirmed)
      #expect(ok.json["dangerous"] as? Bool == true, "\(ok.text)")
      let bytes = try #require((ok.json["request"] as? String).flatMap { Data(base64Encoded: $0) })
      // The confirmation is for these bytes: the same id with another
      // action is refused.
      var swapped = try CommandRequest(decoding: [UInt8](bytes))
      swapped.action = CommandAction(argv: ["rm", "-rf", "/tmp/x"])
      swapped.operatorSignature = [UInt8](try key.signature(for: Identity.signedBytes(swapped)))
      let other = try await browser.send(
        "POST", "/api/v1/commands", json: ["request": Data(swapped.encode()).base64EncodedString()])
      #expect(other.status == 403 && other.json["error"] as? String == "totp_required", "\(other.text)")
      // A selector that repeats a key is refused (the router would read it
      // differently from the console's count).
      var repeated = confirmed
      repeated["target"] = ["kind": "selector", "selector": "site=nope,site=lab"]
      #expect(try await browser.send("POST", "/api/v1/commands/prepare", json: repeated).status == 400)
      let body = [
        "request": bytes.base64EncodedString(), "signature": try key.signature(for: bytes).base64EncodedString(),
      ]
      let sent = try await browser.send("POST", "/api/v1/commands", json: body)
      #expect(sent.json["state"] as? String == "dispatched", "\(sent.text)")
      // The confirmation is good once.
      #expect(try await browser.send("POST", "/api/v1/commands", json: body).status == 403)
    }
  }

  @Test func adminsManageUsersAndEveryChangeIsAudited() async throws {
    try await withConsole { port, _, _ in
      let admin = ConsoleClient(port: port)
      try await admin.logIn("ada", "correct horse battery")
      let add = try await admin.send(
        "POST", "/api/v1/users",
        json: ["name": "olga", "role": "operator", "password": "olga's long password", "displayName": "Olga"])
      #expect(add.status == 201, "\(add.text)")
      #expect(
        try await admin.send(
          "POST", "/api/v1/users", json: ["name": "olga", "role": "viewer", "password": "another long one"]
        ).status == 409)
      #expect(
        try await admin.send(
          "POST", "/api/v1/users", json: ["name": "<b>", "role": "viewer", "password": "another long one"]
        ).status == 400)
      // Olga logs in; the admin sees her session and ends it.
      let olga = ConsoleClient(port: port)
      try await olga.logIn("olga", "olga's long password")
      let users = try await admin.send("GET", "/api/v1/users").json["users"] as? [[String: Any]] ?? []
      let row = try #require(users.first { $0["name"] as? String == "olga" })
      #expect(row["roles"] as? [String] == ["operator"] && row["totpEnrolled"] as? Bool == true)
      let sessionID = try #require((row["sessions"] as? [[String: Any]])?.first?["id"] as? Int)
      #expect(try await admin.send("POST", "/api/v1/sessions/\(sessionID)/end").status == 204)
      #expect(try await olga.send("GET", "/api/v1/hosts").status == 401)
      // Role, disable, TOTP reset, removal.
      #expect(try await admin.send("POST", "/api/v1/users/olga", json: ["role": "viewer"]).status == 204)
      #expect(try await admin.send("POST", "/api/v1/users/olga", json: ["disabled": true]).status == 204)
      #expect(try await admin.send("POST", "/api/v1/users/olga/reset-totp").status == 204)
      let after = try await admin.send("GET", "/api/v1/users").json["users"] as? [[String: Any]] ?? []
      let changed = try #require(after.first { $0["name"] as? String == "olga" })
      #expect(changed["roles"] as? [String] == ["viewer"] && changed["disabled"] as? Bool == true)
      #expect(changed["totpEnrolled"] as? Bool == false)
      // An admin cannot lock themselves out.
      #expect(try await admin.send("POST", "/api/v1/users/ada", json: ["disabled": true]).status == 400)
      #expect(try await admin.send("POST", "/api/v1/users/ada/remove").status == 400)
      #expect(try await admin.send("POST", "/api/v1/users/olga/remove").status == 204)
      #expect(try await admin.send("POST", "/api/v1/users/olga/remove").status == 400)
      let audit = try await PostgresClient(url: db.url, logger: Harness.logger).query(
        "SELECT action || ':' || outcome FROM console_audit WHERE user_name = 'ada' ORDER BY id")
      let trail = try audit.rows.map { try $0.decode(String.self, 0) }
      for line in [
        "add_user:ok", "add_user:refused", "end_session:ok", "change_user:ok", "reset_totp:ok", "remove_user:ok",
        "remove_user:refused",
      ] {
        #expect(trail.contains(line), "\(line) in \(trail)")
      }
    }
  }

  /// Output and results reach the browsers watching that command, and only
  /// for the host the subject names; twin diffs reach the network view.
  @Test func commandOutputAndTwinDiffsAreRelayedToTheirWatchers() throws {
    let fleet = Fleet()
    let watcher = LiveClient()
    let observer = fleet.observe { watcher.note($0) }
    defer { fleet.stopObserving(observer) }
    watcher.watch(.topic(.command("c1")))
    _ = watcher.take()
    let logger = Logger(label: "test")
    func message<M: WireMessage>(_ subject: String, _ m: M) -> BusMessage {
      BusMessage(subject: subject, headers: BusHeader.describing(M.self), payload: m.encode())
    }
    FleetFeed.relayCommand(
      message(
        "commands.result.web-01",
        CommandOutput(
          commandId: "c1", host: "web-01", chunkSequence: 1, channel: .stdout, data: Array("up 3 days\n".utf8))),
      to: fleet, logger: logger)
    FleetFeed.relayCommand(
      message("commands.result.web-01", CommandResult(commandId: "c1", host: "web-01", state: .succeeded, exitCode: 0)),
      to: fleet, logger: logger)
    // Another command, and a host speaking for another: not relayed.
    FleetFeed.relayCommand(
      message("commands.result.web-01", CommandResult(commandId: "c2", host: "web-01", state: .failed)), to: fleet,
      logger: logger)
    FleetFeed.relayCommand(
      message("commands.result.web-02", CommandResult(commandId: "c1", host: "web-01", state: .failed)), to: fleet,
      logger: logger)
    let got = watcher.take().messages.map { String(decoding: $0, as: UTF8.self) }
    #expect(got.count == 2, "\(got)")
    #expect(got.first?.contains(#""text":"up 3 days\n""#) == true, "\(got)")
    #expect(got.last?.contains(#""state":"succeeded""#) == true && got.last?.contains(#""exitCode":0"#) == true)
    // The network view gets the diffs as the twin's JSON.
    watcher.watch(.topic(.network))
    _ = watcher.take()
    FleetFeed.relayDiff(
      message(Subjects.visualizationUpdates, SceneDiff(sequence: 8, baseSequence: 7, removedNodes: ["gone"])),
      to: fleet, logger: logger)
    FleetFeed.relayDiff(
      BusMessage(subject: Subjects.visualizationUpdates, payload: [0xff, 0xff]), to: fleet, logger: logger)
    let diffs = watcher.take().messages.map { String(decoding: $0, as: UTF8.self) }
    #expect(diffs.count == 1, "\(diffs)")
    #expect(diffs.first?.hasPrefix(#"{"type":"twin","diff":{"#) == true, "\(diffs)")
    #expect(diffs.first?.contains(#""baseSequence":7"#) == true, "\(diffs)")
  }

  /// The alerts list says which alerts a silence mutes, matched as the
  /// Notifier matches: alert id, rule glob, host glob, not ended.
  @Test func silencesMarkTheAlertsTheyMute() {
    let a = Alert(id: "a1", rule: "disk-full", host: "web-02")
    let now: Int64 = 1_000
    func until(_ s: Silence) -> Int64 { ConsoleAPI.silencedUntil(a, by: [s], nowMs: now) }
    #expect(until(Silence(host: "web-*", endsAtUnixMs: 5_000)) == 5_000)
    #expect(until(Silence(rule: "disk-*", host: "web-02", endsAtUnixMs: 6_000)) == 6_000)
    #expect(until(Silence(alertId: "a1", endsAtUnixMs: 7_000)) == 7_000)
    #expect(until(Silence(alertId: "a2", endsAtUnixMs: 7_000)) == 0)
    #expect(until(Silence(host: "db-*", endsAtUnixMs: 7_000)) == 0)
    #expect(until(Silence(host: "web-02", endsAtUnixMs: 500)) == 0)  // ended
  }
}
