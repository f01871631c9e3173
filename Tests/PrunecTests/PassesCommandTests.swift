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

    /// docs/PASSES.md is generated from the option declarations; a change to a declaration must
    /// regenerate it (`prunec passes --markdown > docs/PASSES.md`).
    @Test func passReferenceIsUpToDate() throws {
        let r = try CLI.run(["passes", "--markdown"])
        #expect(r.status == 0)
        let committed = try String(contentsOf: CLI.repoRoot.appendingPathComponent("docs/PASSES.md"), encoding: .utf8)
        #expect(committed == r.stdout, "docs/PASSES.md is stale: run `prunec passes --markdown > docs/PASSES.md`")
        #expect(r.stdout.contains("| `sparsity` | a fraction (0.3 or 30%) | `0.3` |"))
    }

    /// `--options` prints each option's declaration: type, default and range.
    @Test func optionsShowTypeDefaultAndRange() throws {
        let r = try CLI.run(["passes", "--options"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("    steps=<an integer> (default 40; from 0 to 1000000): optimizer steps (batch denoising runs or calibration samples each)"))
        #expect(r.stdout.contains("    norm=<one of l1, l2> (default l2): weight norm that scores a unit"))
    }
}
