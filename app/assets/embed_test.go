package assets

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
)

// TestVendoredAssets fails when the binary would be built without the fetched files.
func TestVendoredAssets(t *testing.T) {
	if err := Vendored(); err != nil {
		t.Fatal(err)
	}
}

func TestVendoredNamesTheFix(t *testing.T) {
	fsys := fstest.MapFS{
		"vendor/README.md":   {Data: []byte("fetched by make assets\n")},
		"vendor/htmx.min.js": {Data: []byte("htmx")},
	}
	err := vendored(fsys)
	if err == nil {
		t.Fatal("vendored: no error with uPlot missing")
	}
	for _, want := range []string{"run make assets", "vendor/uPlot.iife.min.js", "vendor/htmx.LICENSE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("vendored: %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "vendor/htmx.min.js") {
		t.Errorf("vendored: %q names a file that is present", err)
	}
}

// TestTestOnlyFilesNotEmbedded: axe-core is for the tests and must not ship in the binary.
func TestTestOnlyFilesNotEmbedded(t *testing.T) {
	err := fs.WalkDir(FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(strings.ToLower(path), "axe") {
			t.Errorf("embedded: %s (test-only file)", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"static/app.css", "static/app.js"} {
		if _, err := fs.Stat(FS, name); err != nil {
			t.Errorf("embedded: %v", err)
		}
	}
}
