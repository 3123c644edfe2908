import ConsoleCore
import Testing

/// The API's request parsing on its own, as bench/Fuzz/FuzzConsole drives it.
@Suite struct RequestParsingTests {
  /// Found writing bench/fuzz.sh (FuzzConsole crashes on it): `to - from`
  /// overflowed for a `from` far in the past, so one GET of any logged-in
  /// user stopped the console. It is a bad request.
  @Test(
    "a series range that overflows is a bad request",
    arguments: [
      "metric=cpu_percent&from=-9223372036854775808&to=1",
      "metric=cpu_percent&from=-9223372036854775808",
      "metric=cpu_percent&from=-1&to=9223372036854775807",
    ])
  func overflowingSeriesRange(_ query: String) {
    let error = #expect(throws: APIError.self) { try ConsoleRequestParsing.parse(.seriesQuery, Array(query.utf8)) }
    #expect(error?.code == "bad_request")
  }

  @Test func aSeriesRangeOfUpTo400DaysIsAccepted() throws {
    try ConsoleRequestParsing.parse(.seriesQuery, Array("metric=cpu_percent&from=0&to=34560000000".utf8))
    #expect(throws: APIError.self) {
      try ConsoleRequestParsing.parse(.seriesQuery, Array("metric=cpu_percent&from=0&to=34560000001".utf8))
    }
  }
}
