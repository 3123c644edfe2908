import ArgumentParser
import ConsoleCore
import Foundation
import Logging
import MirrorStore

/// The console's users, in PostgreSQL: an administrator's tool on the
/// machine of the database, like `createuser`.
struct UsersCommand: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "users", abstract: "People who log in to the console: add, list.",
    subcommands: [Add.self, List.self])

  struct DatabaseOptions: ParsableArguments {
    @Option(name: .customLong("database-url"), help: "PostgreSQL URL (env MIRROR_DATABASE_URL).")
    var databaseURL: String?

    /// Runs `body` with the accounts, and closes the connection after.
    func withAccounts<T>(_ body: (Accounts) async throws -> T) async throws -> T {
      let (accounts, client) = try open()
      do {
        let result = try await body(accounts)
        await client.close()
        return result
      } catch {
        await client.close()
        throw error
      }
    }

    func open() throws -> (Accounts, PostgresClient) {
      guard let url = databaseURL ?? ProcessInfo.processInfo.environment["MIRROR_DATABASE_URL"] else {
        throw ValidationError("give --database-url or set MIRROR_DATABASE_URL")
      }
      var logger = Logger(label: "mirrorctl")
      logger.logLevel = .critical
      let client = PostgresClient(url: url, applicationName: "mirrorctl", logger: logger)
      return (Accounts(database: client), client)
    }
  }

  struct Add: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
      commandName: "add",
      abstract: "Add a user (or give one a new role and password); prints the password when it makes one.",
      discussion: """
        The user enrols TOTP at the first console login (the console shows a QR code). Running it again for a user
        resets the password and the TOTP enrolment and ends the user's sessions.
        """)

    @Argument(help: "The user name (letters, digits, '.', '-', '_').") var name: String
    @Option(help: "admin, operator or viewer.") var role: String
    @Option(name: .customLong("password-file"), help: "Read the password from this file (else one is made).")
    var passwordFile: String?
    @Option(name: .customLong("display-name")) var displayName: String = ""
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
      guard Accounts.roles.contains(role) else {
        throw ValidationError("--role must be one of \(Accounts.roles.joined(separator: ", "))")
      }
      var password = Accounts.generatePassword()
      var made = true
      if let passwordFile {
        guard let text = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
          throw Failure("cannot read \(passwordFile)")
        }
        password = text.trimmingCharacters(in: .newlines)
        made = false
        guard password.count >= 8 else { throw Failure("the password in \(passwordFile) is shorter than 8 characters") }
      }
      do {
        try await database.withAccounts {
          try await $0.add(name: name, role: role, password: password, displayName: displayName)
        }
      } catch let e as AccountError {
        throw Failure(e.description)
      }
      print("user \(name) (\(role)) ready; TOTP is enrolled at the first console login")
      if made { print("password: \(password)") }
    }
  }

  struct List: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The users and their roles.")
    @OptionGroup var database: DatabaseOptions

    func run() async throws {
      let rows = try await database.withAccounts { try await $0.list() }.map { a in
        [a.name, a.roles.joined(separator: ","), a.disabled ? "disabled" : "active", a.totpEnrolled ? "yes" : "no"]
      }
      print(Format.table(["USER", "ROLES", "STATE", "TOTP"], rows))
    }
  }
}
