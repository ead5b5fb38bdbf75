package conformance

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docPath is the conformance map, relative to the repository root.
const docPath = "docs/code-of-practice.md"

// tableHeader is the exact header line of the conformance table.
const tableHeader = "| Guideline | Requirement | Level | Status | Evidence |"

// expectation is one guideline of the Code and the verb it uses.
type expectation struct {
	ID    string
	Level string
}

// codeOfPractice lists every guideline in order with the verb used by the
// Code (seeds/000_05ad93be86fad8b8.txt). 11.4 has no modal verb in the source
// ("Linking data with enterprise repositories enables backup/sync") and is
// recorded as the permissive "can". VD is the suggested Vulnerability
// Disclosure principle, recorded as "should" because it is only suggested.
var codeOfPractice = []expectation{
	{"1.1", "shall"}, {"1.2", "shall"}, {"1.3", "should"}, {"1.4", "shall"},
	{"1.5", "shall"}, {"1.6", "shall"}, {"1.7", "shall"},

	{"2.1", "shall"}, {"2.2", "shall"}, {"2.3", "shall"}, {"2.4", "shall"},
	{"2.5", "shall"}, {"2.6", "should"}, {"2.7", "should"},

	{"3.1", "should"}, {"3.2", "should"}, {"3.3", "shall"}, {"3.4", "shall"},
	{"3.5", "shall"}, {"3.6", "shall"}, {"3.7", "should"},

	{"4.1", "shall"}, {"4.2", "shall"}, {"4.3", "should"}, {"4.4", "shall"},
	{"4.5", "should"}, {"4.6", "can"},

	{"5.1", "shall"}, {"5.2", "shall"}, {"5.3", "should"}, {"5.4", "should"},
	{"5.5", "should"},

	{"6.1", "shall"}, {"6.2", "shall"}, {"6.3", "should"},

	{"7.1", "shall"}, {"7.2", "shall"}, {"7.3", "should"}, {"7.4", "should"},
	{"7.5", "should"},

	{"8.1", "shall"}, {"8.2", "should"}, {"8.3", "shall"}, {"8.4", "shall"},
	{"8.5", "should"}, {"8.6", "should"},

	{"9.1", "shall"}, {"9.2", "shall"}, {"9.3", "should"}, {"9.4", "can"},
	{"9.5", "should"},

	{"10.1", "shall"}, {"10.2", "shall"}, {"10.3", "shall"}, {"10.4", "shall"},
	{"10.5", "shall"}, {"10.6", "shall"}, {"10.7", "shall"},

	{"11.1", "shall"}, {"11.2", "should"}, {"11.3", "should"}, {"11.4", "can"},

	{"VD", "should"},
}

var (
	validLevels   = []string{"shall", "should", "can"}
	validStatuses = []string{"met", "partial", "not yet"}
)

// row is one parsed line of the conformance table.
type row struct {
	Line                                            int
	Guideline, Requirement, Level, Status, Evidence string
}

type evidenceKind int

const (
	evTest    evidenceKind = iota // `path/to/pkg TestName`
	evDoc                         // docs/x.md, `docs/x.md` or [text](docs/x.md)
	evCommand                     // any other backticked text
)

// evidence is one item of an Evidence cell.
type evidence struct {
	Kind evidenceKind
	Pkg  string // evTest: repository-relative package directory
	Func string // evTest: top-level function name (subtest part removed)
	Path string // evDoc: repository-relative file
	Text string // the item as written
}

var (
	// testRefRE matches a test reference: a package directory, one space, a
	// Go test, benchmark or fuzz function name, optionally a /subtest.
	testRefRE = regexp.MustCompile(`^([A-Za-z0-9_.\-/]+) ((?:Test|Benchmark|Fuzz)(?:[A-Z0-9_][A-Za-z0-9_]*)?)(/\S+)?$`)
	// looksLikeTestRE catches a backticked item meant as a test reference
	// that testRefRE rejects, so a typo is an error rather than a "command".
	looksLikeTestRE = regexp.MustCompile(`^\S+ (Test|Benchmark|Fuzz)`)
	linkRE          = regexp.MustCompile(`^\[[^\]]*\]\(([^)\s]+)\)$`)
	docRE           = regexp.MustCompile(`^[A-Za-z0-9_.\-/]+\.md$`)
)

// splitCells splits a Markdown table line into trimmed cells. An escaped
// pipe (\|) stays inside its cell.
func splitCells(line string) []string {
	line = strings.TrimSpace(line)
	line = strings.TrimPrefix(line, "|")
	if strings.HasSuffix(line, "|") && !strings.HasSuffix(line, `\|`) {
		line = line[:len(line)-1]
	}
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		switch {
		case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
			cur.WriteByte('|')
			i++
		case line[i] == '|':
			cells = append(cells, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(line[i])
		}
	}
	return append(cells, strings.TrimSpace(cur.String()))
}

var separatorRE = regexp.MustCompile(`^\|?(\s*:?-+:?\s*\|)+\s*:?-*:?\s*$`)

// parseTable finds the one conformance table in src and returns its rows.
func parseTable(src string) ([]row, []string) {
	var problems []string
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	start := -1
	for i, l := range lines {
		if strings.Join(strings.Fields(l), " ") == tableHeader {
			if start >= 0 {
				problems = append(problems, fmt.Sprintf("line %d: second conformance table; there must be exactly one", i+1))
				continue
			}
			start = i
		}
	}
	if start < 0 {
		return nil, append(problems, fmt.Sprintf("no table with header %q", tableHeader))
	}
	if start+1 >= len(lines) || !separatorRE.MatchString(strings.TrimSpace(lines[start+1])) {
		return nil, append(problems, fmt.Sprintf("line %d: table header not followed by a |---| separator line", start+1))
	}
	var rows []row
	for i := start + 2; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "|") {
			break
		}
		c := splitCells(l)
		if len(c) != 5 {
			problems = append(problems, fmt.Sprintf("line %d: %d cells, want 5 (escape a literal pipe as \\|)", i+1, len(c)))
			continue
		}
		rows = append(rows, row{Line: i + 1, Guideline: c[0], Requirement: c[1], Level: c[2], Status: c[3], Evidence: c[4]})
	}
	return rows, problems
}

// noEvidence reports whether an Evidence cell says "none".
func noEvidence(cell string) bool {
	switch strings.TrimSpace(cell) {
	case "", "—", "–", "-":
		return true
	}
	return false
}

// splitItems splits an Evidence cell on commas that are outside backticks.
func splitItems(cell string) []string {
	var items []string
	var cur strings.Builder
	inCode := false
	for _, r := range cell {
		switch {
		case r == '`':
			inCode = !inCode
			cur.WriteRune(r)
		case r == ',' && !inCode:
			items = append(items, strings.TrimSpace(cur.String()))
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(items, strings.TrimSpace(cur.String()))
}

// cleanRel reports whether p is a clean, repository-relative slash path.
func cleanRel(p string) bool {
	return p != "" && p != "." && !strings.HasPrefix(p, "/") &&
		path.Clean(p) == p && p != ".." && !strings.HasPrefix(p, "../")
}

// parseEvidence parses an Evidence cell that is not "none".
func parseEvidence(cell string) ([]evidence, error) {
	var out []evidence
	for _, it := range splitItems(cell) {
		if it == "" {
			return nil, fmt.Errorf("empty evidence item in %q", cell)
		}
		var ev evidence
		switch {
		case len(it) >= 2 && strings.HasPrefix(it, "`") && strings.HasSuffix(it, "`") && strings.Count(it, "`") == 2:
			inner := strings.TrimSpace(it[1 : len(it)-1])
			if m := testRefRE.FindStringSubmatch(inner); m != nil {
				if !cleanRel(m[1]) {
					return nil, fmt.Errorf("evidence %s: package %q is not a clean repository-relative path", it, m[1])
				}
				ev = evidence{Kind: evTest, Pkg: m[1], Func: m[2], Text: it}
			} else if looksLikeTestRE.MatchString(inner) {
				return nil, fmt.Errorf("evidence %s: malformed test reference, want `path/to/pkg TestName`", it)
			} else if docRE.MatchString(inner) {
				ev = evidence{Kind: evDoc, Path: inner, Text: it}
			} else if inner == "" {
				return nil, fmt.Errorf("evidence %s: empty backticks", it)
			} else {
				ev = evidence{Kind: evCommand, Text: it}
			}
		case linkRE.MatchString(it):
			ev = evidence{Kind: evDoc, Path: linkRE.FindStringSubmatch(it)[1], Text: it}
		case docRE.MatchString(it):
			ev = evidence{Kind: evDoc, Path: it, Text: it}
		default:
			return nil, fmt.Errorf("evidence item %q: want `path/to/pkg TestName`, a docs/….md path or a `command` in backticks", it)
		}
		if ev.Kind == evDoc && (!cleanRel(ev.Path) || !strings.HasSuffix(ev.Path, ".md")) {
			return nil, fmt.Errorf("evidence %s: document must be a clean repository-relative .md path", it)
		}
		out = append(out, ev)
	}
	return out, nil
}

// funcDefined reports whether a top-level function name (no receiver) is
// declared in one of the _test.go files of dir.
func funcDefined(dir, name string) (bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return false, err
	}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return false, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == name {
				return true, nil
			}
		}
	}
	return false, nil
}

// verify checks that one evidence item exists under root.
func verify(root string, ev evidence) error {
	switch ev.Kind {
	case evTest:
		dir := filepath.Join(root, filepath.FromSlash(ev.Pkg))
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("%s: package directory %s does not exist", ev.Text, ev.Pkg)
		}
		ok, err := funcDefined(dir, ev.Func)
		if err != nil {
			return fmt.Errorf("%s: %v", ev.Text, err)
		}
		if !ok {
			return fmt.Errorf("%s: no func %s( in %s/*_test.go", ev.Text, ev.Func, ev.Pkg)
		}
	case evDoc:
		if st, err := os.Stat(filepath.Join(root, filepath.FromSlash(ev.Path))); err != nil || st.IsDir() {
			return fmt.Errorf("%s: file %s does not exist", ev.Text, ev.Path)
		}
	}
	return nil
}

// report is the outcome of a check: Failures fail the test, Notes are logged.
type report struct {
	Failures []string
	Notes    []string
	Count    map[string]int // rows per status
}

// check validates a conformance document against the expected guidelines,
// resolving evidence relative to the repository root.
func check(src, root string, want []expectation) report {
	r := report{Count: map[string]int{}}
	fail := func(format string, a ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, a...)) }
	rows, problems := parseTable(src)
	r.Failures = append(r.Failures, problems...)

	index := map[string]int{}
	for i, e := range want {
		index[e.ID] = i
	}
	seen := map[string]int{} // guideline -> line first seen
	last := -1
	for _, rw := range rows {
		at := fmt.Sprintf("line %d (%s)", rw.Line, rw.Guideline)
		i, known := index[rw.Guideline]
		switch {
		case !known:
			fail("%s: unknown guideline %q", at, rw.Guideline)
		case seen[rw.Guideline] != 0:
			fail("%s: duplicate of the row on line %d", at, seen[rw.Guideline])
		default:
			seen[rw.Guideline] = rw.Line
			if i < last {
				fail("%s: out of order, must come before %s", at, want[last].ID)
			} else {
				last = i
			}
		}
		if rw.Requirement == "" {
			fail("%s: empty Requirement", at)
		}
		if !slices.Contains(validLevels, rw.Level) {
			fail("%s: Level %q, want one of shall, should, can", at, rw.Level)
		} else if known && rw.Level != want[i].Level {
			fail("%s: Level %q, but the Code says %q", at, rw.Level, want[i].Level)
		}
		if !slices.Contains(validStatuses, rw.Status) {
			fail("%s: Status %q, want one of met, partial, not yet", at, rw.Status)
			continue
		}
		r.Count[rw.Status]++
		if noEvidence(rw.Evidence) {
			if rw.Status != "not yet" {
				fail("%s: Status %q needs evidence", at, rw.Status)
			}
			continue
		}
		evs, err := parseEvidence(rw.Evidence)
		if err != nil {
			fail("%s: %v", at, err)
			continue
		}
		for _, ev := range evs {
			if err := verify(root, ev); err != nil {
				if rw.Status == "met" {
					fail("%s: met, but %v", at, err)
				} else {
					r.Notes = append(r.Notes, fmt.Sprintf("%s: %s, evidence not there yet: %v", at, rw.Status, err))
				}
			}
		}
	}
	for _, e := range want {
		if seen[e.ID] == 0 {
			fail("guideline %s missing", e.ID)
		}
	}
	return r
}

// repoRoot is the module root, two directories above this test file.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !strings.Contains(string(gomod), "module github.com/bulwark-iot/bulwark\n") {
		t.Fatalf("%s is not the bulwark module root (go.mod: %v)", root, err)
	}
	return root
}

// TestCodeOfPracticeMap is the conformance check itself.
func TestCodeOfPracticeMap(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(docPath)))
	if err != nil {
		t.Fatal(err)
	}
	r := check(string(src), root, codeOfPractice)
	for _, n := range r.Notes {
		t.Log(n)
	}
	for _, f := range r.Failures {
		t.Errorf("%s: %s", docPath, f)
	}
	t.Logf("%s: %d met, %d partial, %d not yet", docPath, r.Count["met"], r.Count["partial"], r.Count["not yet"])
}

// TestExpectationsTable guards the embedded expectation table itself.
func TestExpectationsTable(t *testing.T) {
	counts := []int{7, 7, 7, 6, 5, 3, 5, 6, 5, 7, 4} // guidelines per principle 1..11
	var ids []string
	for p, n := range counts {
		for g := 1; g <= n; g++ {
			ids = append(ids, fmt.Sprintf("%d.%d", p+1, g))
		}
	}
	ids = append(ids, "VD")
	if len(ids) != len(codeOfPractice) {
		t.Fatalf("codeOfPractice has %d entries, want %d", len(codeOfPractice), len(ids))
	}
	for i, e := range codeOfPractice {
		if e.ID != ids[i] {
			t.Errorf("codeOfPractice[%d] = %s, want %s", i, e.ID, ids[i])
		}
		if !slices.Contains(validLevels, e.Level) {
			t.Errorf("codeOfPractice[%d] %s: bad level %q", i, e.ID, e.Level)
		}
	}
}

// TestCheckerCanFail proves the checker rejects each kind of bad row, on a
// small inline table and a fake repository in a temporary directory.
func TestCheckerCanFail(t *testing.T) {
	root := t.TempDir()
	mustWrite := func(rel, body string) {
		t.Helper()
		p := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite("internal/x/x_test.go", "package x\n\nimport \"testing\"\n\n"+
		"func TestReal(t *testing.T) {}\n"+
		"func BenchmarkReal(b *testing.B) {}\n"+
		"// func TestCommented(t *testing.T) {}\n"+
		"type s struct{}\n\nfunc (s) TestMethod(t *testing.T) {}\n")
	mustWrite("internal/x/x.go", "package x\n\nfunc TestNotInTestFile() {}\n")
	mustWrite("docs/real.md", "# real\n")

	want := []expectation{{"1.1", "shall"}, {"1.2", "should"}, {"1.3", "can"}, {"VD", "should"}}
	const head = "# T\n\n" + tableHeader + "\n|---|---|---|---|---|\n"
	good := map[string]string{
		"1.1": "| 1.1 | Req one. | shall | met | `internal/x TestReal`, `internal/x BenchmarkReal`, `docs/real.md`, [doc](docs/real.md), docs/real.md, `go test -run 'A,B' ./internal/x/` |",
		"1.2": "| 1.2 | Req two. | should | partial | `internal/x TestReal/sub`, `internal/y TestLater` |",
		"1.3": "| 1.3 | Req three \\| escaped pipe. | can | not yet | — |",
		"VD":  "| VD | Disclosure. | should | not yet | - |",
	}
	table := func(lines ...string) string { return head + strings.Join(lines, "\n") + "\n\nAfter the table.\n" }
	goodTable := table(good["1.1"], good["1.2"], good["1.3"], good["VD"])

	t.Run("good", func(t *testing.T) {
		r := check(goodTable, root, want)
		if len(r.Failures) != 0 {
			t.Fatalf("good table failed:\n%s", strings.Join(r.Failures, "\n"))
		}
		// The partial row's missing evidence is a note, not a failure.
		if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "internal/y") {
			t.Fatalf("notes = %q, want one about internal/y", r.Notes)
		}
		if r.Count["met"] != 1 || r.Count["partial"] != 1 || r.Count["not yet"] != 2 {
			t.Fatalf("counts = %v", r.Count)
		}
	})

	replace := func(id, row string) string {
		return strings.Replace(goodTable, good[id], row, 1)
	}
	bad := []struct {
		name, doc, wantErr string
	}{
		{"no table", "# nothing here\n", "no table"},
		{"two tables", goodTable + "\n" + goodTable, "second conformance table"},
		{"no separator", strings.Replace(goodTable, "|---|---|---|---|---|\n", "", 1), "separator"},
		{"wrong cell count", replace("1.3", "| 1.3 | Req | can | not yet |"), "4 cells"},
		{"missing", table(good["1.1"], good["1.2"], good["VD"]), "guideline 1.3 missing"},
		{"missing VD", table(good["1.1"], good["1.2"], good["1.3"]), "guideline VD missing"},
		{"duplicate", table(good["1.1"], good["1.2"], good["1.2"], good["1.3"], good["VD"]), "duplicate"},
		{"out of order", table(good["1.2"], good["1.1"], good["1.3"], good["VD"]), "out of order"},
		{"unknown guideline", table(good["1.1"], good["1.2"], good["1.3"], "| 1.9 | X | shall | not yet | — |", good["VD"]), "unknown guideline"},
		{"empty requirement", replace("1.3", "| 1.3 |  | can | not yet | — |"), "empty Requirement"},
		{"bad level", replace("1.3", "| 1.3 | Req | may | not yet | — |"), `Level "may"`},
		{"level mismatch", replace("1.2", "| 1.2 | Req | shall | not yet | — |"), `the Code says "should"`},
		{"bad status", replace("1.3", "| 1.3 | Req | can | done | — |"), `Status "done"`},
		{"met without evidence", replace("1.1", "| 1.1 | Req | shall | met | — |"), "needs evidence"},
		{"partial without evidence", replace("1.2", "| 1.2 | Req | should | partial |  |"), "needs evidence"},
		{"met, missing package", replace("1.1", "| 1.1 | Req | shall | met | `internal/nope TestReal` |"), "internal/nope does not exist"},
		{"met, missing func", replace("1.1", "| 1.1 | Req | shall | met | `internal/x TestAbsent` |"), "no func TestAbsent("},
		{"met, func only in a comment", replace("1.1", "| 1.1 | Req | shall | met | `internal/x TestCommented` |"), "no func TestCommented("},
		{"met, method not func", replace("1.1", "| 1.1 | Req | shall | met | `internal/x TestMethod` |"), "no func TestMethod("},
		{"met, func not in _test.go", replace("1.1", "| 1.1 | Req | shall | met | `internal/x TestNotInTestFile` |"), "no func TestNotInTestFile("},
		{"met, missing doc", replace("1.1", "| 1.1 | Req | shall | met | `docs/absent.md` |"), "docs/absent.md does not exist"},
		{"met, missing linked doc", replace("1.1", "| 1.1 | Req | shall | met | [x](docs/absent.md) |"), "docs/absent.md does not exist"},
		{"malformed test name", replace("1.2", "| 1.2 | Req | should | partial | `internal/x Testlower` |"), "malformed test reference"},
		{"bare test reference", replace("1.2", "| 1.2 | Req | should | partial | internal/x TestReal |"), "want `path/to/pkg TestName`"},
		{"escaping package path", replace("1.2", "| 1.2 | Req | should | partial | `../x TestReal` |"), "clean repository-relative"},
		{"escaping doc path", replace("1.2", "| 1.2 | Req | should | partial | `../secret.md` |"), "clean repository-relative"},
		{"empty item", replace("1.2", "| 1.2 | Req | should | partial | `internal/x TestReal`, |"), "empty evidence item"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			r := check(tc.doc, root, want)
			if len(r.Failures) == 0 {
				t.Fatalf("checker accepted a bad document")
			}
			for _, f := range r.Failures {
				if strings.Contains(f, tc.wantErr) {
					return
				}
			}
			t.Fatalf("failures %q do not mention %q", r.Failures, tc.wantErr)
		})
	}
}
