import Foundation
public import Logging
import Metrics
public import MirrorStore
import MirrorWire
import Synchronization

/// Sends the outbox: groups what is queued for a channel within the group
/// window into one message, keeps each channel under its rate limit (the
/// rest waits and goes out together), retries with exponential backoff,
/// and gives up (counted, logged) only after the last attempt or on a
/// 4xx answer.
public final class Dispatcher: Sendable {
  let rules: NotifierRules
  let database: PostgresClient
  let sender: any HTTPSender
  let logger: Logger
  private let kicked = Atomic<Bool>(false)

  public init(rules: NotifierRules, database: PostgresClient, sender: any HTTPSender, logger: Logger) {
    self.rules = rules
    self.database = database
    self.sender = sender
    self.logger = logger
  }

  /// Something was queued: look now rather than at the next poll.
  public func kick() { kicked.store(true, ordering: .releasing) }

  public func run() async {
    var buckets: [String: TokenBucket] = [:]
    for c in rules.channels { buckets[c.name] = TokenBucket(perMinute: c.perMinute) }
    while !Task.isCancelled {
      let wait = await round(&buckets)
      // Sleep until the next group is due, a poll interval, or a kick.
      var slept: Duration = .zero
      while slept < wait, !kicked.exchange(false, ordering: .acquiringAndReleasing), !Task.isCancelled {
        try? await Task.sleep(for: .milliseconds(20))
        slept += .milliseconds(20)
      }
    }
  }

  /// One pass over the due notifications; returns how long to wait.
  func round(_ buckets: inout [String: TokenBucket]) async -> Duration {
    let settings = rules.settings
    let due: [AlertStore.Queued]
    do {
      due = try await database.withConnection { try AlertStore.due(limit: 1000, on: $0) }
    } catch {
      logger.warning("cannot read the notification outbox; will retry", metadata: ["error": "\(error)"])
      return .seconds(2)
    }
    var wait: Duration = .seconds(1)
    let groupWaitMs = settings.groupWait.wholeMilliseconds
    var byChannel: [String: [AlertStore.Queued]] = [:]
    for q in due { byChannel[q.channel, default: []].append(q) }
    for (name, queued) in byChannel.sorted(by: { $0.key < $1.key }) {
      guard let channel = rules.channels.first(where: { $0.name == name }) else {
        try? await database.withConnection {
          try AlertStore.markFailed(queued.map(\.id), error: "no channel named \(name)", delayMs: nil, on: $0)
        }
        Counter(label: "notifier_delivery_failures_total", dimensions: [("channel", name)]).increment()
        logger.error("notifications for a channel that is not configured", metadata: ["channel": "\(name)"])
        continue
      }
      // The group window runs from the oldest first attempt.
      let oldest = queued.filter { $0.attempts == 0 }.map(\.ageMs).max() ?? groupWaitMs
      if oldest < groupWaitMs {
        wait = min(wait, .milliseconds(groupWaitMs - oldest))
        continue
      }
      var rest = queued[...]
      while !rest.isEmpty {
        guard buckets[name, default: TokenBucket(perMinute: channel.perMinute)].take() else {
          Counter(label: "notifier_rate_limited_total", dimensions: [("channel", name)]).increment()
          wait = min(wait, .seconds(2))
          break
        }
        let chunk = Array(rest.prefix(settings.maxGroup))
        rest = rest.dropFirst(chunk.count)
        await send(chunk, to: channel)
      }
    }
    return wait
  }

  func send(_ chunk: [AlertStore.Queued], to channel: Channel) async {
    let settings = rules.settings
    let items = chunk.map { MessageFormatter.Item(alert: $0.alert, kind: $0.kind) }
    let request = MessageFormatter.request(for: channel, items: items, settings: settings)
    let outcome = await sender.post(request)
    let ids = chunk.map(\.id)
    let attempts = (chunk.map(\.attempts).max() ?? 0) + 1
    do {
      switch outcome {
      case .delivered:
        try await database.withConnection { try AlertStore.markSent(ids, on: $0) }
        Counter(label: "notifier_deliveries_total", dimensions: [("channel", channel.name)]).increment()
        logger.info(
          "notification delivered",
          metadata: ["channel": "\(channel.name)", "alerts": "\(chunk.count)", "attempt": "\(attempts)"])
      case .retry(let why, let after):
        Counter(label: "notifier_delivery_errors_total", dimensions: [("channel", channel.name)]).increment()
        if attempts >= settings.maxAttempts {
          try await database.withConnection { try AlertStore.markFailed(ids, error: why, delayMs: nil, on: $0) }
          Counter(label: "notifier_delivery_failures_total", dimensions: [("channel", channel.name)]).increment()
          logger.error(
            "notification given up after the last attempt",
            metadata: ["channel": "\(channel.name)", "url": "\(channel.redactedURL)", "error": "\(why)"])
        } else {
          let backoff = min(
            settings.retryInitial.wholeMilliseconds << min(attempts - 1, 30), settings.retryMax.wholeMilliseconds)
          let delay = max(backoff, after?.wholeMilliseconds ?? 0)
          try await database.withConnection { try AlertStore.markFailed(ids, error: why, delayMs: delay, on: $0) }
          logger.warning(
            "notification not delivered; will retry",
            metadata: [
              "channel": "\(channel.name)", "url": "\(channel.redactedURL)", "error": "\(why)",
              "retry_in_ms": "\(delay)",
            ])
        }
      case .rejected(let why):
        try await database.withConnection { try AlertStore.markFailed(ids, error: why, delayMs: nil, on: $0) }
        Counter(label: "notifier_delivery_failures_total", dimensions: [("channel", channel.name)]).increment()
        logger.error(
          "notification refused by the receiver",
          metadata: ["channel": "\(channel.name)", "url": "\(channel.redactedURL)", "error": "\(why)"])
      }
    } catch {
      // The outcome is not recorded: the rows stay queued and are tried
      // again (a receiver may then see a message twice; never zero times).
      logger.warning("cannot record a delivery outcome", metadata: ["error": "\(error)"])
    }
  }
}

/// At most `perMinute` sends a minute, refilled continuously.
struct TokenBucket {
  let perMinute: Double
  var tokens: Double
  var last = ContinuousClock.now

  init(perMinute: Int) {
    self.perMinute = Double(perMinute)
    tokens = Double(perMinute)
  }

  mutating func take() -> Bool {
    let now = ContinuousClock.now
    let elapsed = Double((now - last).wholeMilliseconds) / 60_000
    last = now
    tokens = min(perMinute, tokens + elapsed * perMinute)
    guard tokens >= 1 else { return false }
    tokens -= 1
    return true
  }
}
