package recordings_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The export lists the customer's users of the web app, without their password hashes and
// two-factor secrets; a customer without users has no users files.
func TestExportUsers(t *testing.T) {
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "trackline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := keyring.Open(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const phc, secret = "$argon2id$v=19$m=65536,t=3,p=2$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo", "totp-secret-0123456789"
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		for _, id := range []string{"acme", "bakery"} {
			if err := tx.CreateCustomer(&store.Customer{ID: id, Status: store.StatusActive, SiteKey: id + "-site-key", Created: t0}); err != nil {
				return err
			}
		}
		for _, u := range []store.User{
			{ID: "u-ann", CustomerID: "acme", Email: "ann@acme.example", Name: "=Ann", Role: store.RoleAdmin, PasswordHash: phc,
				TOTPSecret: []byte(secret), Created: t0},
			{ID: "u-bob", CustomerID: "acme", Email: "bob@acme.example", Role: store.RoleMember, Created: t0},
			{ID: "u-op", Email: "op@switch.example", Role: store.RoleOperator, PasswordHash: phc, Created: t0},
		} {
			if err := tx.PutUser(&u); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ex := recordings.NewExporter(db, filepath.Join(dir, "recordings"), keys, recordings.WithExportClock(func() time.Time { return t0 }))
	tests := []struct {
		customer string
		users    []string // ids in users.jsonl; nil: no users files
	}{
		{"acme", []string{"u-ann", "u-bob"}},
		{"bakery", nil},
	}
	for _, tt := range tests {
		t.Run(tt.customer, func(t *testing.T) {
			var buf bytes.Buffer
			m, err := ex.Write(context.Background(), &buf, tt.customer)
			if err != nil {
				t.Fatal(err)
			}
			files := unzipped(t, buf.Bytes())
			var listed []string
			for _, f := range m.Files {
				listed = append(listed, f.Name)
			}
			hasFiles := slices.Contains(listed, "users.jsonl") && slices.Contains(listed, "users.csv")
			if hasFiles != (tt.users != nil) || (files["users.jsonl"] != nil) != (tt.users != nil) {
				t.Fatalf("archive files %v, want users files: %v", listed, tt.users != nil)
			}
			// No password hash, no two-factor secret in any form, no operator.
			for name, b := range files {
				for _, probe := range []string{phc, "argon2id", secret, base64.StdEncoding.EncodeToString([]byte(secret)), "password", "totp", "u-op"} {
					if bytes.Contains(b, []byte(probe)) {
						t.Errorf("%s holds %q", name, probe)
					}
				}
			}
			if tt.users == nil {
				return
			}
			var got []string
			for line := range strings.Lines(string(files["users.jsonl"])) {
				var u map[string]any
				if err := json.Unmarshal([]byte(line), &u); err != nil {
					t.Fatal(err)
				}
				got = append(got, u["id"].(string))
				if u["id"] == "u-ann" && (u["email"] != "ann@acme.example" || u["role"] != "admin" || u["two_factor"] != true || u["created"] != "2026-05-01T10:00:00Z") {
					t.Errorf("users.jsonl: %v", u)
				}
			}
			if !slices.Equal(got, tt.users) {
				t.Fatalf("users.jsonl holds %v, want %v", got, tt.users)
			}
			rows, err := csv.NewReader(bytes.NewReader(files["users.csv"])).ReadAll()
			if err != nil || len(rows) != 1+len(tt.users) {
				t.Fatalf("users.csv: %v %v", rows, err)
			}
			want := [][]string{{"id", "email", "name", "role", "created", "two_factor"},
				{"u-ann", "ann@acme.example", "'=Ann", "admin", "2026-05-01T10:00:00Z", "true"}}
			if !slices.Equal(rows[0], want[0]) || !slices.Equal(rows[1], want[1]) {
				t.Fatalf("users.csv: %v, want %v first", rows, want)
			}
		})
	}
}

// unzipped reads every file of a zip archive.
func unzipped(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name], err = io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
