package recordings

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseArchiveName(t *testing.T) {
	tests := []struct {
		name string
		id   string
		at   string
		ok   bool
	}{
		{"trackline-export-acme-20261201T120000Z.zip", "acme", "2026-12-01T12:00:00Z", true},
		{"trackline-export-old-co-2-20261201T120000Z.zip", "old-co-2", "2026-12-01T12:00:00Z", true},
		{"trackline-export-acme-20261201T120000Z.zip.part", "", "", false},
		{"trackline-export-20261201T120000Z.zip", "", "", false},
		{"trackline-export-acme-2026-12-01.zip", "", "", false},
		{"trackline-export-a.b-20261201T120000Z.zip", "", "", false},
		{"trackline-export-..-20261201T120000Z.zip", "", "", false},
		{"../trackline-export-acme-20261201T120000Z.zip", "", "", false},
		{"other.zip", "", "", false},
	}
	for _, tt := range tests {
		id, at, ok := ParseArchiveName(tt.name)
		if ok != tt.ok || id != tt.id || ok && at.Format(time.RFC3339) != tt.at {
			t.Errorf("ParseArchiveName(%q) = %q %v %v", tt.name, id, at, ok)
		}
	}
}

// TestArchivesExpire: the listing, opening and expiry of the archives in a directory.
func TestArchivesExpire(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"trackline-export-b-20261101T000000Z.zip",
		"trackline-export-a-20261001T000000Z.zip",
		"trackline-export-c-20261001T000000Z.zip.part", // a crashed export
		"trackline-export-d-20261201T000000Z.zip.part", // one being written
		"README",
	}
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	list, err := Archives(dir)
	if err != nil || len(list) != 2 || list[0].CustomerID != "a" || list[1].CustomerID != "b" || list[0].Bytes != int64(len(names[1])) {
		t.Fatalf("Archives: %+v %v", list, err)
	}
	f, info, err := OpenArchive(dir, names[0])
	if err != nil || info.CustomerID != "b" {
		t.Fatalf("OpenArchive: %+v %v", info, err)
	}
	f.Close()
	if _, _, err := OpenArchive(dir, "README"); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("OpenArchive of another file: %v", err)
	}
	if _, _, err := OpenArchive(dir, "trackline-export-z-20261001T000000Z.zip"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenArchive of a missing archive: %v", err)
	}

	gone, err := ExpireArchives(dir, time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	slices.Sort(gone)
	if err != nil || !slices.Equal(gone, []string{"trackline-export-a-20261001T000000Z.zip", "trackline-export-c-20261001T000000Z.zip.part"}) {
		t.Fatalf("ExpireArchives: %v %v", gone, err)
	}
	left, _ := os.ReadDir(dir)
	var leftNames []string
	for _, de := range left {
		leftNames = append(leftNames, de.Name())
	}
	if !slices.Equal(leftNames, []string{"README", "trackline-export-b-20261101T000000Z.zip", "trackline-export-d-20261201T000000Z.zip.part"}) {
		t.Fatalf("left: %v", leftNames)
	}
	if gone, err := ExpireArchives(filepath.Join(dir, "nothing"), time.Now()); err != nil || gone != nil {
		t.Fatalf("a missing directory: %v %v", gone, err)
	}
	if err := RemoveArchive(dir, names[0]); err != nil {
		t.Fatal(err)
	}
	if list, _ := Archives(dir); len(list) != 0 {
		t.Fatalf("after RemoveArchive: %+v", list)
	}
}
