package store

import "testing"

func TestSplitSQL(t *testing.T) {
	got := splitSQL("-- a comment; with a semicolon\nCREATE TABLE a (x TEXT DEFAULT 'a;b'); -- trailing; comment\nINSERT INTO a VALUES ('it''s');\n\n")
	if len(got) != 2 || got[0] != "\nCREATE TABLE a (x TEXT DEFAULT 'a;b')" || got[1] != " \nINSERT INTO a VALUES ('it''s')" {
		t.Fatalf("splitSQL = %q", got)
	}
}
