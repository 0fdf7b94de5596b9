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

// A call's annotations are in calls.jsonl as the API shows them, and in the last columns of
// calls.csv.
func TestExportCallAnnotations(t *testing.T) {
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
	c := store.Call{ID: "01JT0000000000000000000001", CustomerID: "acme", Dialled: "+31850000001", Start: t0, End: t0.Add(time.Minute),
		Disposition: store.DispAnswered}
	err = db.Write(context.Background(), func(tx *store.Tx) error {
		if err := tx.CreateCustomer(&store.Customer{ID: "acme", Status: store.StatusActive, SiteKey: "acme-site-key"}); err != nil {
			return err
		}
		if err := tx.PutCall(&c); err != nil {
			return err
		}
		_, err := tx.AnnotateCall("acme", c.ID, func(c *store.Call) error {
			c.LeadStatus, c.Tags, c.Value, c.Note, c.Updated = store.LeadStatusCustomer, []string{"vip", "=sum"}, 99.5, "line one\nline two", t0.Add(time.Hour)
			return nil
		})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := recordings.NewExporter(db, filepath.Join(dir, "recordings"), keys).Write(context.Background(), &buf, "acme"); err != nil {
		t.Fatal(err)
	}
	files := unzipped(t, buf.Bytes())
	var got store.Call
	if err := json.Unmarshal(files["calls.jsonl"], &got); err != nil || got.LeadStatus != store.LeadStatusCustomer || !slices.Equal(got.Tags, []string{"vip", "=sum"}) ||
		got.Value != 99.5 || got.Note != "line one\nline two" || !got.Updated.Equal(t0.Add(time.Hour)) {
		t.Fatalf("calls.jsonl: %+v %v", got, err)
	}
	rows, err := csv.NewReader(bytes.NewReader(files["calls.csv"])).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("calls.csv: %v %v", rows, err)
	}
	n := len(rows[0])
	if head, row := rows[0][n-5:], rows[1][n-5:]; !slices.Equal(head, []string{"lead_status", "tags", "value", "note", "updated"}) ||
		!slices.Equal(row, []string{"customer", "vip;=sum", "99.5", "line one\nline two", "2026-05-01T11:00:00Z"}) {
		t.Fatalf("calls.csv: %v / %v", head, row)
	}
}
