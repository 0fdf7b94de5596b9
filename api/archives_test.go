package api

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestArchivesHandover lists, downloads and deletes retention archives through the admin
// API while their handover window lasts; after it they answer 410 and leave the list.
func TestArchivesHandover(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	content := []byte("PK\x03\x04 a zip, as far as this test cares")
	for _, name := range []string{
		"trackline-export-acme-20261125T120000Z.zip",      // 6 days old
		"trackline-export-old-co-20261029T120000Z.zip",    // 33 days: its window is over
		"trackline-export-acme-20261201T115900Z.zip.part", // being written
		"notes.txt",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnvWith(t, Config{AdminToken: token, ArchiveDir: dir, ArchiveHandover: 30 * 24 * time.Hour}, WithClock(func() time.Time { return now }))
	auth := []string{"Authorization", "Bearer " + token}

	r := do(t, "GET", e.admin.URL+"/v1/archives", "", "", auth...)
	list, _ := r.body["archives"].([]any)
	if r.status != 200 || len(list) != 2 {
		t.Fatalf("list: %d %v", r.status, r.body)
	}
	first := list[0].(map[string]any)
	if first["name"] != "trackline-export-old-co-20261029T120000Z.zip" || first["customer_id"] != "old-co" ||
		first["created"] != "2026-10-29T12:00:00Z" || first["expires"] != "2026-11-28T12:00:00Z" || first["bytes"] != float64(len(content)) {
		t.Fatalf("first archive %v", first)
	}

	get := func(name string) (int, []byte, http.Header) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.admin.URL+"/v1/archives/"+name, nil)
		req.Header.Set(auth[0], auth[1])
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b, res.Header
	}
	status, b, h := get("trackline-export-acme-20261125T120000Z.zip")
	if status != 200 || !bytes.Equal(b, content) || h.Get("Content-Type") != "application/zip" ||
		h.Get("Content-Disposition") != `attachment; filename="trackline-export-acme-20261125T120000Z.zip"` {
		t.Fatalf("download: %d %q %v", status, b, h)
	}
	if status, _, _ := get("trackline-export-old-co-20261029T120000Z.zip"); status != 410 {
		t.Fatalf("an archive past its window: %d, want 410", status)
	}
	for _, name := range []string{"trackline-export-acme-20261201T115900Z.zip.part", "notes.txt", "..%2Ft.db",
		"trackline-export-..-20261125T120000Z.zip", "trackline-export-acme-20261126T120000Z.zip"} {
		if status, _, _ := get(name); status != 404 {
			t.Fatalf("GET %s: %d, want 404", name, status)
		}
	}
	if r := do(t, "GET", e.admin.URL+"/v1/archives", "", ""); r.status != 401 {
		t.Fatalf("without the token: %d", r.status)
	}

	// Handed over: the operator deletes it at once.
	if r := do(t, "DELETE", e.admin.URL+"/v1/archives/trackline-export-acme-20261125T120000Z.zip", "", "", auth...); r.status != 204 {
		t.Fatalf("delete: %d %v", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(dir, "trackline-export-acme-20261125T120000Z.zip")); !os.IsNotExist(err) {
		t.Fatalf("the deleted archive: %v", err)
	}
	if r := do(t, "DELETE", e.admin.URL+"/v1/archives/trackline-export-acme-20261125T120000Z.zip", "", "", auth...); r.status != 404 {
		t.Fatalf("delete again: %d", r.status)
	}
	if r := do(t, "GET", e.admin.URL+"/v1/archives", "", "", auth...); len(r.body["archives"].([]any)) != 1 {
		t.Fatalf("list after the delete: %v", r.body)
	}

	// Without an export directory the endpoints say so.
	e = newEnvWith(t, Config{AdminToken: token})
	if r := do(t, "GET", e.admin.URL+"/v1/archives", "", "", auth...); r.status != 503 {
		t.Fatalf("without a directory: %d", r.status)
	}
}
