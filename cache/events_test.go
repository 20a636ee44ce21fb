package cache_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// logMethods are the slog.Logger methods that write a line.
var logMethods = map[string]bool{
	"Debug": true, "DebugContext": true, "Info": true, "InfoContext": true, "Warn": true, "WarnContext": true,
	"Error": true, "ErrorContext": true, "Log": true, "LogAttrs": true,
}

// TestEveryLogLineNamesItsEvent: each line the cache and its built-in
// stores log carries an "event" attribute, so that an operator's alert can
// match it, and the README lists every event.
func TestEveryLogLineNamesItsEvent(t *testing.T) {
	fset := token.NewFileSet()
	var files []string
	for _, dir := range []string{".", "redis", "memory"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		files = append(files, m...)
	}
	events := map[string]string{} // constant name -> value
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.ValueSpec:
				for i, id := range n.Names {
					if strings.HasPrefix(id.Name, "Event") && i < len(n.Values) {
						if lit, ok := n.Values[i].(*ast.BasicLit); ok {
							events[id.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			case *ast.CallExpr:
				sel, ok := n.Fun.(*ast.SelectorExpr)
				if !ok || !logMethods[sel.Sel.Name] {
					return true
				}
				recv, ok := sel.X.(*ast.SelectorExpr)
				if !ok || recv.Sel.Name != "log" {
					return true
				}
				if !namesEvent(n.Args) {
					t.Errorf("%s: a log line without an event attribute", fset.Position(n.Pos()))
				}
			}
			return true
		})
	}
	if len(events) < 10 {
		t.Fatalf("found %d Event constants; the parse is wrong", len(events))
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range events {
		if !strings.Contains(string(readme), "`"+v+"`") {
			t.Errorf("the README does not list %s (%q)", name, v)
		}
	}
}

// namesEvent reports whether a log call's arguments hold event(...) or the
// pair "event", value.
func namesEvent(args []ast.Expr) bool {
	for _, a := range args {
		switch a := a.(type) {
		case *ast.CallExpr:
			if id, ok := a.Fun.(*ast.Ident); ok && id.Name == "event" {
				return true
			}
		case *ast.BasicLit:
			if a.Value == `"event"` {
				return true
			}
		}
	}
	return false
}
