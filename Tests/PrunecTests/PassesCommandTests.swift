import Testing

/// `prunec passes`: one pass per line, its name first (a scripting contract).
@Suite struct PassesCommandTests {
    @Test func listsEveryPassNameFirst() throws {
        let r = try CLI.run(["passes"])
        #expect(r.status == 0)
        let names = r.stdout.split(separator: "\n").map { $0.split(separator: " ").first.map(String.init) ?? "" }
        #expect(names.contains("dce"))
        #expect(names.allSatisfy { !$0.isEmpty })
    }
}
