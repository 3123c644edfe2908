import Crypto
import Foundation
import SwiftASN1
import X509

/// The private CA of the NATS server's TLS: its key and certificate, the
/// server's certificate, the client certificates it issued (a ledger, so
/// they can be pinned and revoked) and the `tls { }` block nats-server
/// includes. Everything is PEM under DIR/certs; keys are ECDSA P-256.
///
/// Revocation: nats-server reads no CRL, so the `tls` block pins the client
/// certificates that may connect (`pinned_certs`: the SHA-256 of each one's
/// DER SubjectPublicKeyInfo, checked during the handshake). Revoking a
/// certificate takes it out of that set; a reload applies it.
struct CertificateAuthority {
  var dir: String

  var certs: String { "\(dir)/certs" }
  var caCertificate: String { "\(certs)/ca.pem" }
  var caKey: String { "\(certs)/ca-key.pem" }
  var serverCertificate: String { "\(certs)/server.pem" }
  var serverKey: String { "\(certs)/server-key.pem" }
  func hostCertificate(_ host: String) -> String { "\(certs)/hosts/\(host).pem" }
  func hostKey(_ host: String) -> String { "\(certs)/hosts/\(host)-key.pem" }
  func clientCertificate(_ name: String) -> String { "\(certs)/clients/\(name).pem" }
  func clientKey(_ name: String) -> String { "\(certs)/clients/\(name)-key.pem" }
  /// Every client certificate issued: `SERIAL NAME SPKI-SHA256 NOT-AFTER`.
  var issuedFile: String { "\(certs)/issued.txt" }
  /// Every client certificate revoked: `SERIAL NAME SPKI-SHA256 REVOKED-AT`.
  var revokedFile: String { "\(dir)/revoked.txt" }
  var tlsConfig: String { "\(dir)/tls.conf" }

  /// The common name of host NAME's certificate: its NATS user's name.
  static func hostCommonName(_ host: String) -> String { "host-\(host)" }

  /// One issued client certificate, as the ledger records it.
  struct Entry: Equatable {
    var serial: String
    var name: String
    var fingerprint: String
    var date: String

    var line: String { "\(serial) \(name) \(fingerprint) \(date)" }

    init(serial: String, name: String, fingerprint: String, date: String) {
      self.serial = serial
      self.name = name
      self.fingerprint = fingerprint
      self.date = date
    }

    init?(line: Substring) {
      let fields = line.split(separator: " ").map(String.init)
      guard fields.count == 4 else { return nil }
      (serial, name, fingerprint, date) = (fields[0], fields[1], fields[2], fields[3])
    }
  }

  // MARK: Issuing

  /// Makes the CA: a P-256 key and a self-signed certificate.
  func initialize(days: Int) throws {
    let fm = FileManager.default
    guard !fm.fileExists(atPath: caKey) else {
      throw Failure("\(caKey) exists; the CA is made once (its certificate is what every client trusts)")
    }
    try fm.createDirectory(atPath: certs, withIntermediateDirectories: true)
    let key = P256.Signing.PrivateKey()
    let name = try DistinguishedName {
      OrganizationName("MIRROR STAGE")
      CommonName("MIRROR STAGE NATS CA")
    }
    let publicKey = Certificate.PublicKey(key.publicKey)
    let now = Date()
    let certificate = try Certificate(
      version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
      notValidBefore: now.addingTimeInterval(-300), notValidAfter: now.addingTimeInterval(Double(days) * 86_400),
      issuer: name, subject: name,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
        Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        SubjectKeyIdentifier(hash: publicKey)
      }, issuerPrivateKey: Certificate.PrivateKey(key))
    try CredsCommand.write(key.pemRepresentation + "\n", to: caKey)
    try CredsCommand.write(try certificate.serializeAsPEM().pemString + "\n", to: caCertificate, mode: 0o644)
  }

  /// Issues the server's certificate for `names` (DNS names and IP
  /// addresses, the first also its common name) and writes the `tls` block.
  func issueServer(names: [String], days: Int) throws {
    let sans = names.map { name -> GeneralName in
      if let ip = Self.ipAddress(name) { return .ipAddress(ASN1OctetString(contentBytes: ip[...])) }
      return .dnsName(name)
    }
    _ = try issue(
      commonName: names[0], usage: .serverAuth, alternativeNames: sans, days: days,
      certificatePath: serverCertificate, keyPath: serverKey)
    try writeTLSConfig()
  }

  /// Issues a client certificate (extended key usage clientAuth), records
  /// it in the ledger and rebuilds the pinned set.
  func issueClient(commonName: String, days: Int, certificatePath: String, keyPath: String) throws -> Entry {
    let (certificate, key) = try issue(
      commonName: commonName, usage: .clientAuth, alternativeNames: [], days: days,
      certificatePath: certificatePath, keyPath: keyPath)
    let entry = Entry(
      serial: Self.hex(certificate.serialNumber.bytes), name: commonName,
      fingerprint: Self.fingerprint(key.publicKey),
      date: ISO8601DateFormatter().string(from: certificate.notValidAfter))
    try append(entry, to: issuedFile)
    try writeTLSConfig()
    return entry
  }

  private func issue(
    commonName: String, usage: ExtendedKeyUsage.Usage, alternativeNames: [GeneralName], days: Int,
    certificatePath: String, keyPath: String
  ) throws -> (Certificate, P256.Signing.PrivateKey) {
    let (ca, caKey) = try loadCA()
    let key = P256.Signing.PrivateKey()
    let publicKey = Certificate.PublicKey(key.publicKey)
    let subject = try DistinguishedName {
      OrganizationName("MIRROR STAGE")
      CommonName(commonName)
    }
    let now = Date()
    let notAfter = min(now.addingTimeInterval(Double(days) * 86_400), ca.notValidAfter)
    let authorityKey = try ca.extensions.subjectKeyIdentifier?.keyIdentifier
    let certificate = try Certificate(
      version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
      notValidBefore: now.addingTimeInterval(-300), notValidAfter: notAfter, issuer: ca.subject, subject: subject,
      extensions: try Certificate.Extensions {
        Critical(BasicConstraints.notCertificateAuthority)
        Critical(KeyUsage(digitalSignature: true))
        try ExtendedKeyUsage([usage])
        SubjectKeyIdentifier(hash: publicKey)
        AuthorityKeyIdentifier(keyIdentifier: authorityKey)
        if !alternativeNames.isEmpty { SubjectAlternativeNames(alternativeNames) }
      }, issuerPrivateKey: Certificate.PrivateKey(caKey))
    try FileManager.default.createDirectory(
      atPath: (certificatePath as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    try CredsCommand.write(key.pemRepresentation + "\n", to: keyPath)
    try CredsCommand.write(try certificate.serializeAsPEM().pemString + "\n", to: certificatePath, mode: 0o644)
    return (certificate, key)
  }

  private func loadCA() throws -> (Certificate, P256.Signing.PrivateKey) {
    guard let pem = try? String(contentsOfFile: caCertificate, encoding: .utf8),
      let keyPEM = try? String(contentsOfFile: caKey, encoding: .utf8)
    else { throw Failure("no CA in \(certs): run mirrorctl certs init --dir \(dir) first") }
    do {
      return (try Certificate(pemEncoded: pem), try P256.Signing.PrivateKey(pemRepresentation: keyPEM))
    } catch {
      throw Failure("cannot read the CA in \(certs): \(error)")
    }
  }

  // MARK: Revoking and the server's tls block

  /// Revokes NAME's client certificates (only the one with `serial` if
  /// given) and rebuilds the pinned set; returns what it revoked.
  func revoke(name: String, serial: String?) throws -> [Entry] {
    let revoked = Set(try entries(revokedFile).map(\.serial))
    let matching = try entries(issuedFile).filter {
      $0.name == name && !revoked.contains($0.serial) && (serial == nil || $0.serial == serial?.lowercased())
    }
    let now = ISO8601DateFormatter().string(from: Date())
    for entry in matching {
      try append(
        Entry(serial: entry.serial, name: entry.name, fingerprint: entry.fingerprint, date: now), to: revokedFile)
    }
    try writeTLSConfig()
    return matching
  }

  /// The certificates that may connect: issued, not revoked, not expired.
  func pinned() throws -> [Entry] {
    let revoked = try entries(revokedFile)
    let revokedSerials = Set(revoked.map(\.serial))
    let revokedKeys = Set(revoked.map(\.fingerprint))
    let formatter = ISO8601DateFormatter()
    let now = Date()
    return try entries(issuedFile).filter {
      !revokedSerials.contains($0.serial) && !revokedKeys.contains($0.fingerprint)
        && (formatter.date(from: $0.date).map { $0 > now } ?? false)
    }
  }

  /// Writes DIR/tls.conf once the server has a certificate: TLS required on
  /// the client port, client certificates verified against the CA and
  /// limited to the pinned set.
  func writeTLSConfig() throws {
    guard FileManager.default.fileExists(atPath: serverCertificate) else { return }
    func absolute(_ path: String) -> String {
      URL(fileURLWithPath: path).standardizedFileURL.path
    }
    var pins = try pinned().map { "    \"\($0.fingerprint)\"  # \($0.name) serial \($0.serial)" }
    if pins.isEmpty {
      // An empty list would turn pinning off; this digest matches no key.
      pins = ["    \"\(String(repeating: "0", count: 64))\"  # no client certificate may connect"]
    }
    try CredsCommand.write(
      """
      # Generated by mirrorctl certs; include it in the nats-server configuration
      # and reload the server after every change (nats-server --signal reload).
      tls {
        cert_file: "\(absolute(serverCertificate))"
        key_file: "\(absolute(serverKey))"
        ca_file: "\(absolute(caCertificate))"
        # Every client shows a certificate of this CA...
        verify: true
        # ...and one of these (SHA-256 of its DER SubjectPublicKeyInfo); a revoked one is left out.
        pinned_certs: [
      \(pins.joined(separator: "\n"))
        ]
      }

      """, to: tlsConfig)
  }

  private func entries(_ file: String) throws -> [Entry] {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap(Entry.init(line:))
  }

  private func append(_ entry: Entry, to file: String) throws {
    let existing = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
    try CredsCommand.write(existing + entry.line + "\n", to: file, mode: 0o644)
  }

  // MARK: Encoding

  /// What nats-server's `pinned_certs` lists: the hex SHA-256 of the DER SubjectPublicKeyInfo.
  static func fingerprint(_ key: P256.Signing.PublicKey) -> String {
    hex(SHA256.hash(data: key.derRepresentation))
  }

  static func hex(_ bytes: some Sequence<UInt8>) -> String {
    bytes.map { String(format: "%02x", $0) }.joined()
  }

  /// The bytes of an IPv4 or IPv6 address, or nil for a DNS name.
  static func ipAddress(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
    return nil
  }
}
