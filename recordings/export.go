package recordings

import (
	"archive/zip"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/store"
	"github.com/trackline/trackline/store/keyring"
)

// The export archive of a customer: a zip, written as a stream (nothing is held whole in
// memory), that holds everything the store keeps of the customer and its recordings:
//
//	customer.json                  the customer record
//	calls.jsonl, calls.csv         call records, newest first
//	sessions.jsonl, sessions.csv   website sessions, newest first
//	channels.jsonl, channels.csv   channels and their rules
//	numbers.jsonl, numbers.csv     tracked numbers
//	recordings.jsonl, .csv         recording metadata (id, call, file, duration, size, sha256)
//	users.jsonl, users.csv         the web app's users of the customer (when it has any): id,
//	                               email, name, role, created, two_factor; never a password
//	                               hash or a two-factor secret
//	webhook_endpoints.jsonl        the webhook endpoints (when it has any), without their
//	                               signing secrets
//	google_ads.jsonl               the Google Ads settings (when it has them), without the
//	                               sealed OAuth2 secrets
//	conversion_uploads.jsonl       each call's Google Ads upload state (when it has any)
//	recordings/<call id>.wav       the recordings
//	manifest.json                  format, version, customer, time, and per file its records,
//	                               bytes and sha256; recordings whose file was gone
//
// The JSON Lines files hold one record per line, as the admin API shows them. The CSV files
// (RFC 4180, a header line) hold the same records flattened; a text cell that a spreadsheet
// would run as a formula (it starts with =, +, -, @, a tab or a carriage return, and is not
// a plain number such as +31612345678) is written with a leading apostrophe. Calls and
// sessions are read in pages of short read transactions: each file holds the records that
// existed when the export began (a call still in progress may differ between the two).

// ArchiveFormat and ArchiveVersion name the archive's layout in its manifest.
const (
	ArchiveFormat  = "trackline-export"
	ArchiveVersion = 1
)

// Manifest describes an export archive; it is its last file, manifest.json.
type Manifest struct {
	Format     string         `json:"format"`
	Version    int            `json:"version"`
	CustomerID string         `json:"customer_id"`
	Created    time.Time      `json:"created"`
	Files      []ManifestFile `json:"files"`
	// MissingRecordings are the ids of recordings whose record exists but whose file does not.
	MissingRecordings []string `json:"missing_recordings,omitempty"`
}

// ManifestFile is one file of the archive.
type ManifestFile struct {
	Name    string `json:"name"`
	Records int    `json:"records,omitempty"` // lines of data (JSONL, CSV without its header)
	Bytes   int64  `json:"bytes"`
	SHA256  string `json:"sha256"`
}

// Exporter writes customers' export archives from a store and a recordings tree.
type Exporter struct {
	db   *store.DB
	dir  string
	keys *keyring.Keyring
	objs *Objects // WithExportObjects; nil: recordings are local only
	open OpenFunc
	now  func() time.Time
}

// ExportOption configures NewExporter.
type ExportOption func(*Exporter)

// WithExportClock sets the clock that stamps archives (tests).
func WithExportClock(now func() time.Time) ExportOption { return func(e *Exporter) { e.now = now } }

// WithExportObjects reads the recordings that are not on this node's disk from the object
// store o, and has RemoveCustomer delete the customer's objects too.
func WithExportObjects(o *Objects) ExportOption {
	return func(e *Exporter) {
		e.objs = o
		e.open = Files{Dir: e.dir, Keys: e.keys, Objects: o}.Opener()
	}
}

// NewExporter exports from db and the recordings under dir, encrypted with keys.
func NewExporter(db *store.DB, dir string, keys *keyring.Keyring, opts ...ExportOption) *Exporter {
	e := &Exporter{db: db, dir: dir, keys: keys, open: Opener(dir, keys), now: time.Now}
	for _, o := range opts {
		o(e)
	}
	return e
}

// RemoveCustomer destroys the customer's key, so that no copy of its recordings (in a
// backup) can be read any more, and deletes its recordings directory (RemoveCustomer) and
// its objects (a failed deletion is kept and retried: Objects.RemoveCustomer). It is for a
// customer whose data is deleted for good.
func (e *Exporter) RemoveCustomer(customerID string) error {
	if err := e.keys.Destroy(customerID); err != nil {
		return err
	}
	return Files{Dir: e.dir, Keys: e.keys, Objects: e.objs}.RemoveCustomer(context.Background(), customerID)
}

// ExportFile writes the customer's archive into dir as
// trackline-export-<customer>-<yyyymmddThhmmssZ>.zip: first as .part, then fsynced,
// renamed and the directory fsynced, so that a file by that name is complete and durable.
// It answers the file's path.
func (e *Exporter) ExportFile(ctx context.Context, dir, customerID string) (string, error) {
	if dir == "" {
		return "", errors.New("export: no export directory configured")
	}
	if !fsutil.SafeID(customerID) {
		return "", fmt.Errorf("export: customer id %q: %w", customerID, ErrInvalidID)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	name := archivePrefix + customerID + "-" + e.now().UTC().Format(archiveTime) + archiveSuffix
	final := filepath.Join(dir, name)
	part := final + partSuffix
	f, err := os.OpenFile(part, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("export: %w", err)
	}
	bw := bufio.NewWriterSize(f, 256<<10)
	_, err = e.Write(ctx, bw, customerID)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(part, final)
	}
	if err == nil {
		err = fsutil.SyncDir(dir)
	}
	if err != nil {
		os.Remove(part)
		return "", fmt.Errorf("export %s: %w", customerID, err)
	}
	return final, nil
}

// Write streams the customer's archive to w. An error part way leaves w with an incomplete
// zip (no central directory), which no reader takes for a whole one.
func (e *Exporter) Write(ctx context.Context, w io.Writer, customerID string) (Manifest, error) {
	x := &export{e: e, ctx: ctx, id: customerID, zw: zip.NewWriter(w),
		m: Manifest{Format: ArchiveFormat, Version: ArchiveVersion, CustomerID: customerID, Created: e.now().UTC().Truncate(time.Second)}}
	if err := x.run(); err != nil {
		return x.m, fmt.Errorf("export %s: %w", customerID, err)
	}
	return x.m, nil
}

// export is one archive being written.
type export struct {
	e   *Exporter
	ctx context.Context
	id  string
	zw  *zip.Writer
	m   Manifest

	callBound, sessionBound string   // the newest call and session when the export began
	recordings              []string // recording ids of the calls, in call order
}

func (x *export) run() error {
	var c store.Customer
	var chs []store.Channel
	var nums []store.Number
	var users []userLine
	var endpoints []store.Endpoint
	var ads []store.GoogleAds
	var uploads []store.ConversionUpload
	err := x.e.db.View(func(tx *store.Tx) error {
		var err error
		if c, err = tx.Customer(x.id); err != nil {
			return err
		}
		if endpoints, err = tx.Endpoints(x.id); err != nil {
			return err
		}
		for i := range endpoints {
			endpoints[i].Secret, endpoints[i].PreviousSecret = "", ""
		}
		switch g, err := tx.GoogleAds(x.id); {
		case err == nil:
			g.SealedSecrets = nil
			ads = append(ads, g)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
		if err := tx.ConversionUploads(x.id, "", func(u store.ConversionUpload) bool {
			uploads = append(uploads, u)
			return true
		}); err != nil {
			return err
		}
		if chs, err = tx.Channels(x.id); err != nil {
			return err
		}
		us, err := tx.Users(x.id)
		if err != nil {
			return err
		}
		for i := range us {
			users = append(users, userOf(&us[i]))
		}
		return tx.Numbers(func(n store.Number) error {
			if n.CustomerID == x.id {
				nums = append(nums, n)
			}
			return nil
		})
	})
	if err != nil {
		return err
	}
	if err := x.file("customer.json", zip.Deflate, func(f *entry) error {
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		_, err = f.Write(append(b, '\n'))
		return err
	}); err != nil {
		return err
	}
	if err := x.bounds(); err != nil {
		return err
	}
	steps := []struct {
		name string
		body func(f *entry) error
	}{
		{"calls.jsonl", func(f *entry) error {
			return x.eachCall(func(c *store.Call) error {
				if c.RecordingID != "" {
					x.recordings = append(x.recordings, c.RecordingID)
				}
				return f.jsonLine(c)
			})
		}},
		{"calls.csv", func(f *entry) error {
			return writeCSV(f, callColumns, func(row func(*store.Call) error) error { return x.eachCall(row) })
		}},
		{"sessions.jsonl", func(f *entry) error {
			return x.eachSession(func(s *store.Session) error { return f.jsonLine(s) })
		}},
		{"sessions.csv", func(f *entry) error {
			return writeCSV(f, sessionColumns, func(row func(*store.Session) error) error { return x.eachSession(row) })
		}},
		{"channels.jsonl", func(f *entry) error { return eachJSON(f, chs) }},
		{"channels.csv", func(f *entry) error { return writeCSV(f, channelColumns, eachOf(chs)) }},
		{"numbers.jsonl", func(f *entry) error { return eachJSON(f, nums) }},
		{"numbers.csv", func(f *entry) error { return writeCSV(f, numberColumns, eachOf(nums)) }},
		{"recordings.jsonl", func(f *entry) error {
			return x.eachRecording(func(r *store.Recording) error { return f.jsonLine(recordingLine(r)) })
		}},
		{"recordings.csv", func(f *entry) error {
			return writeCSV(f, recordingColumns, func(row func(*store.Recording) error) error { return x.eachRecording(row) })
		}},
	}
	if len(users) > 0 {
		steps = append(steps, []struct {
			name string
			body func(f *entry) error
		}{
			{"users.jsonl", func(f *entry) error { return eachJSON(f, users) }},
			{"users.csv", func(f *entry) error { return writeCSV(f, userColumns, eachOf(users)) }},
		}...)
	}
	// The integrations' settings and states, when the customer has them.
	for _, o := range []struct {
		name string
		n    int
		body func(f *entry) error
	}{
		{"webhook_endpoints.jsonl", len(endpoints), func(f *entry) error { return eachJSON(f, endpoints) }},
		{"google_ads.jsonl", len(ads), func(f *entry) error { return eachJSON(f, ads) }},
		{"conversion_uploads.jsonl", len(uploads), func(f *entry) error { return eachJSON(f, uploads) }},
	} {
		if o.n > 0 {
			steps = append(steps, struct {
				name string
				body func(f *entry) error
			}{o.name, o.body})
		}
	}
	for _, s := range steps {
		if err := x.file(s.name, zip.Deflate, s.body); err != nil {
			return err
		}
	}
	// The audio, stored as it is (PCM does not deflate much and costs CPU).
	err = x.eachRecording(func(r *store.Recording) error {
		rc, err := x.e.open(*r)
		if errors.Is(err, ErrGone) {
			x.m.MissingRecordings = append(x.m.MissingRecordings, r.ID)
			return nil
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		return x.file(recordingFile(r), zip.Store, func(f *entry) error {
			_, err := io.Copy(f, rc)
			return err
		})
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(x.m, "", "  ")
	if err != nil {
		return err
	}
	mw, err := x.zw.CreateHeader(&zip.FileHeader{Name: "manifest.json", Method: zip.Deflate, Modified: x.m.Created})
	if err != nil {
		return err
	}
	if _, err := mw.Write(append(b, '\n')); err != nil {
		return err
	}
	return x.zw.Close()
}

// file writes one entry of the archive and notes it in the manifest.
func (x *export) file(name string, method uint16, body func(f *entry) error) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	w, err := x.zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: x.m.Created})
	if err != nil {
		return err
	}
	f := &entry{w: w, h: sha256.New()}
	if err := body(f); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	x.m.Files = append(x.m.Files, ManifestFile{Name: name, Records: f.records, Bytes: f.n, SHA256: hex.EncodeToString(f.h.Sum(nil))})
	return nil
}

// entry is an archive entry being written: it counts bytes and records and hashes them.
type entry struct {
	w       io.Writer
	h       hash.Hash
	n       int64
	records int
}

func (f *entry) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	f.h.Write(p[:n])
	f.n += int64(n)
	return n, err
}

func (f *entry) jsonLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f.records++
	_, err = f.Write(append(b, '\n'))
	return err
}

func eachJSON[T any](f *entry, recs []T) error {
	for i := range recs {
		if err := f.jsonLine(&recs[i]); err != nil {
			return err
		}
	}
	return nil
}

func eachOf[T any](recs []T) func(func(*T) error) error {
	return func(row func(*T) error) error {
		for i := range recs {
			if err := row(&recs[i]); err != nil {
				return err
			}
		}
		return nil
	}
}

// pageSize is how many calls or sessions one read transaction of an export reads.
const pageSize = 500

// bounds notes the newest call and session, so that both files of each hold the same ones.
func (x *export) bounds() error {
	calls, _, err := x.e.db.Calls(store.CallFilter{CustomerID: x.id, Limit: 1})
	if err != nil {
		return err
	}
	if len(calls) > 0 {
		x.callBound = calls[0].ID
	}
	return x.e.db.View(func(tx *store.Tx) error {
		ss, err := tx.SessionsOf(x.id, "", 1)
		if len(ss) > 0 {
			x.sessionBound = ss[0].ID
		}
		return err
	})
}

// eachCall calls fn for each call up to the bound, newest first.
func (x *export) eachCall(fn func(*store.Call) error) error {
	if x.callBound == "" {
		return nil
	}
	before := ""
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		calls, next, err := x.e.db.Calls(store.CallFilter{CustomerID: x.id, Before: before, Limit: pageSize})
		if err != nil {
			return err
		}
		for i := range calls {
			if calls[i].ID > x.callBound {
				continue
			}
			if err := fn(&calls[i]); err != nil {
				return err
			}
		}
		if next == "" {
			return nil
		}
		before = next
	}
}

// eachSession calls fn for each session up to the bound, newest first.
func (x *export) eachSession(fn func(*store.Session) error) error {
	if x.sessionBound == "" {
		return nil
	}
	before := ""
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		var ss []store.Session
		err := x.e.db.View(func(tx *store.Tx) (err error) { ss, err = tx.SessionsOf(x.id, before, pageSize); return err })
		if err != nil {
			return err
		}
		for i := range ss {
			if ss[i].ID > x.sessionBound {
				continue
			}
			if err := fn(&ss[i]); err != nil {
				return err
			}
		}
		if len(ss) < pageSize {
			return nil
		}
		before = ss[len(ss)-1].ID
	}
}

// eachRecording calls fn for the recording of each exported call that has one.
func (x *export) eachRecording(fn func(*store.Recording) error) error {
	for _, id := range x.recordings {
		r, err := x.e.db.Recording(id)
		if errors.Is(err, store.ErrNotFound) {
			continue // erased since the calls were read
		}
		if err != nil {
			return err
		}
		if r.CustomerID != x.id {
			continue
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	return nil
}

// recordingFile is a recording's name in the archive.
func recordingFile(r *store.Recording) string {
	name := r.CallID
	if !fsutil.SafeID(name) {
		name = r.ID
	}
	return "recordings/" + name + ".wav"
}

// recordingMeta is a recording's line in recordings.jsonl.
type recordingMeta struct {
	ID              string    `json:"id"`
	CallID          string    `json:"call_id"`
	File            string    `json:"file"`
	DurationSeconds float64   `json:"duration_seconds"`
	Size            int64     `json:"size"`
	SHA256          string    `json:"sha256"`
	Created         time.Time `json:"created"`
}

func recordingLine(r *store.Recording) recordingMeta {
	return recordingMeta{ID: r.ID, CallID: r.CallID, File: recordingFile(r), DurationSeconds: r.Duration.Seconds(),
		Size: r.Size, SHA256: r.SHA256, Created: r.Created}
}

// userLine is a user of the web app as the archive shows it: without its password hash
// and its two-factor secret, only whether it has one.
type userLine struct {
	ID        string     `json:"id"`
	Email     string     `json:"email"`
	Name      string     `json:"name,omitempty"`
	Role      store.Role `json:"role"`
	Created   time.Time  `json:"created"`
	TwoFactor bool       `json:"two_factor"`
}

func userOf(u *store.User) userLine {
	return userLine{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, Created: u.Created, TwoFactor: len(u.TOTPSecret) > 0}
}

// column is one CSV column: its header and its cell of a record.
type column[T any] struct {
	name string
	cell func(*T) string
}

func writeCSV[T any](f *entry, cols []column[T], each func(func(*T) error) error) error {
	cw := csv.NewWriter(f)
	row := make([]string, len(cols))
	for i, c := range cols {
		row[i] = c.name
	}
	if err := cw.Write(row); err != nil {
		return err
	}
	err := each(func(r *T) error {
		for i, c := range cols {
			row[i] = safeCell(c.cell(r))
		}
		f.records++
		return cw.Write(row)
	})
	cw.Flush()
	if err != nil {
		return err
	}
	return cw.Error()
}

// safeCell keeps a spreadsheet from running a cell as a formula: text that starts with =,
// +, -, @, a tab or a carriage return gets a leading apostrophe, unless it is a plain
// number (such as +31612345678 or -1.5).
func safeCell(s string) string {
	if s == "" || !strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return s
	}
	digits, dot := 0, false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return "'" + s
		}
	}
	if digits == 0 || s[0] != '+' && s[0] != '-' {
		return "'" + s
	}
	return s
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func itoa(n int) string           { return strconv.Itoa(n) }
func ftoa(f float64) string       { return strconv.FormatFloat(f, 'f', -1, 64) }
func btoa(b bool) string          { return strconv.FormatBool(b) }
func secs(d time.Duration) string { return ftoa(d.Seconds()) }

var callColumns = []column[store.Call]{
	{"id", func(c *store.Call) string { return c.ID }},
	{"dialled", func(c *store.Call) string { return c.Dialled }},
	{"caller", func(c *store.Call) string { return c.Caller }},
	{"business_line", func(c *store.Call) string { return c.BusinessLine }},
	{"start", func(c *store.Call) string { return ts(c.Start) }},
	{"ringing", func(c *store.Call) string { return ts(c.Ringing) }},
	{"answer", func(c *store.Call) string { return ts(c.Answer) }},
	{"end", func(c *store.Call) string { return ts(c.End) }},
	{"talk_seconds", func(c *store.Call) string { return ftoa(c.TalkSeconds) }},
	{"disposition", func(c *store.Call) string { return string(c.Disposition) }},
	{"hangup_by", func(c *store.Call) string { return string(c.HangupBy) }},
	{"end_reason", func(c *store.Call) string { return c.EndReason }},
	{"final_status", func(c *store.Call) string { return itoa(c.FinalStatus) }},
	{"channel", func(c *store.Call) string { return c.Channel }},
	{"session_id", func(c *store.Call) string { return c.SessionID }},
	{"keyword", func(c *store.Call) string { return c.Keyword }},
	{"landing_page", func(c *store.Call) string { return c.LandingPage }},
	{"referrer_host", func(c *store.Call) string { return c.ReferrerHost }},
	{"gclid", func(c *store.Call) string { return c.Gclid }},
	{"candidates", func(c *store.Call) string { return itoa(c.Candidates) }},
	{"recording_id", func(c *store.Call) string { return c.RecordingID }},
	{"not_recorded_reason", func(c *store.Call) string { return c.NotRecordedReason }},
	{"call_id_a", func(c *store.Call) string { return c.CallIDA }},
	{"call_id_b", func(c *store.Call) string { return c.CallIDB }},
	{"caller_pseudonym", func(c *store.Call) string { return c.CallerPseudonym }},
	{"caller_last_digits", func(c *store.Call) string { return c.CallerLastDigits }},
	{"lead_status", func(c *store.Call) string { return string(c.LeadStatus) }},
	{"tags", func(c *store.Call) string { return strings.Join(c.Tags, ";") }},
	{"value", func(c *store.Call) string { return ftoa(c.Value) }},
	{"note", func(c *store.Call) string { return c.Note }},
	{"updated", func(c *store.Call) string { return ts(c.Updated) }},
}

var sessionColumns = []column[store.Session]{
	{"id", func(s *store.Session) string { return s.ID }},
	{"created", func(s *store.Session) string { return ts(s.Created) }},
	{"channel", func(s *store.Session) string { return s.Channel }},
	{"landing_page", func(s *store.Session) string { return s.LandingPage }},
	{"referrer_host", func(s *store.Session) string { return s.ReferrerHost }},
	{"utm_source", func(s *store.Session) string { return s.UTMSource }},
	{"utm_medium", func(s *store.Session) string { return s.UTMMedium }},
	{"utm_campaign", func(s *store.Session) string { return s.UTMCampaign }},
	{"utm_term", func(s *store.Session) string { return s.UTMTerm }},
	{"utm_content", func(s *store.Session) string { return s.UTMContent }},
	{"gclid", func(s *store.Session) string { return s.Gclid }},
	{"gbraid", func(s *store.Session) string { return s.Gbraid }},
	{"wbraid", func(s *store.Session) string { return s.Wbraid }},
}

var channelColumns = []column[store.Channel]{
	{"id", func(c *store.Channel) string { return c.ID }},
	{"name", func(c *store.Channel) string { return c.Name }},
	{"order", func(c *store.Channel) string { return itoa(c.Order) }},
	{"rules", func(c *store.Channel) string {
		parts := make([]string, len(c.Rules))
		for i, r := range c.Rules {
			parts[i] = r.Param + "=" + r.Pattern
		}
		return strings.Join(parts, ";")
	}},
}

var numberColumns = []column[store.Number]{
	{"number", func(n *store.Number) string { return n.E164 }},
	{"kind", func(n *store.Number) string { return n.Kind.String() }},
	{"channel_id", func(n *store.Number) string { return n.ChannelID }},
	{"state", func(n *store.Number) string { return n.State.String() }},
	{"quarantined_until", func(n *store.Number) string { return ts(n.QuarantinedUntil) }},
	{"porting", func(n *store.Number) string { return btoa(n.Porting) }},
	{"created", func(n *store.Number) string { return ts(n.Created) }},
}

var recordingColumns = []column[store.Recording]{
	{"id", func(r *store.Recording) string { return r.ID }},
	{"call_id", func(r *store.Recording) string { return r.CallID }},
	{"file", func(r *store.Recording) string { return recordingFile(r) }},
	{"duration_seconds", func(r *store.Recording) string { return secs(r.Duration) }},
	{"size", func(r *store.Recording) string { return strconv.FormatInt(r.Size, 10) }},
	{"sha256", func(r *store.Recording) string { return r.SHA256 }},
	{"created", func(r *store.Recording) string { return ts(r.Created) }},
}

var userColumns = []column[userLine]{
	{"id", func(u *userLine) string { return u.ID }},
	{"email", func(u *userLine) string { return u.Email }},
	{"name", func(u *userLine) string { return u.Name }},
	{"role", func(u *userLine) string { return string(u.Role) }},
	{"created", func(u *userLine) string { return ts(u.Created) }},
	{"two_factor", func(u *userLine) string { return btoa(u.TwoFactor) }},
}

// The retention archives of export_then_delete (ExportFile's files in the export directory)
// are handed over from there: the admin API lists and serves them, and the retention
// sweeper deletes each one when its handover window is over (docs/api.md).

const (
	archivePrefix = "trackline-export-"
	archiveSuffix = ".zip"
	archiveTime   = "20060102T150405Z"
)

// ArchiveFile is a complete archive in the export directory.
type ArchiveFile struct {
	Name       string    `json:"name"`
	CustomerID string    `json:"customer_id"`
	Created    time.Time `json:"created"` // from the file's name: when ExportFile began it
	Bytes      int64     `json:"bytes"`
}

// ParseArchiveName reads the customer and the time of an archive's file name
// (trackline-export-<customer>-<yyyymmddThhmmssZ>.zip), and reports whether name is one.
func ParseArchiveName(name string) (customerID string, created time.Time, ok bool) {
	rest, ok := strings.CutPrefix(name, archivePrefix)
	if !ok {
		return "", time.Time{}, false
	}
	if rest, ok = strings.CutSuffix(rest, archiveSuffix); !ok {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i <= 0 {
		return "", time.Time{}, false
	}
	t, err := time.Parse(archiveTime, rest[i+1:])
	if err != nil || !fsutil.SafeID(rest[:i]) {
		return "", time.Time{}, false
	}
	return rest[:i], t, true
}

// Archives lists the complete archives in dir, oldest first; a directory that does not
// exist holds none. Files of other names (an export still being written, .part) are left out.
func Archives(dir string) ([]ArchiveFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list archives: %w", err)
	}
	var out []ArchiveFile
	for _, de := range entries {
		id, created, ok := ParseArchiveName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		info, err := de.Info()
		if err != nil {
			continue // removed meanwhile
		}
		out = append(out, ArchiveFile{Name: de.Name(), CustomerID: id, Created: created, Bytes: info.Size()})
	}
	slices.SortFunc(out, func(a, b ArchiveFile) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// OpenArchive opens the archive called name in dir. A name that is not an archive's answers
// ErrInvalidID; one that is not there, an error that is os.ErrNotExist.
func OpenArchive(dir, name string) (*os.File, ArchiveFile, error) {
	id, created, ok := ParseArchiveName(name)
	if !ok {
		return nil, ArchiveFile{}, fmt.Errorf("archive %q: %w", name, ErrInvalidID)
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, ArchiveFile{}, err
	}
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		f.Close()
		return nil, ArchiveFile{}, fmt.Errorf("archive %q: %w", name, os.ErrNotExist)
	}
	return f, ArchiveFile{Name: name, CustomerID: id, Created: created, Bytes: info.Size()}, nil
}

// RemoveArchive deletes the archive called name from dir (and the directory entry durably).
func RemoveArchive(dir, name string) error {
	if _, _, ok := ParseArchiveName(name); !ok {
		return fmt.Errorf("archive %q: %w", name, ErrInvalidID)
	}
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		return err
	}
	return fsutil.SyncDir(dir)
}

// ExpireArchives deletes the archives in dir made before before, and the .part files of
// exports begun before it (left by a crash: nothing would complete them), and answers the
// names it deleted. A directory that does not exist holds none.
func ExpireArchives(dir string, before time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("expire archives: %w", err)
	}
	var gone []string
	var errs []error
	for _, de := range entries {
		_, created, ok := ParseArchiveName(strings.TrimSuffix(de.Name(), partSuffix))
		if !ok || !created.Before(before) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, de.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		gone = append(gone, de.Name())
	}
	if len(gone) > 0 {
		if err := fsutil.SyncDir(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return gone, errors.Join(errs...)
}

// ExpireArchives deletes the archives in dir made before before (ExpireArchives): the
// retention sweeper's end of their handover window.
func (e *Exporter) ExpireArchives(dir string, before time.Time) ([]string, error) {
	return ExpireArchives(dir, before)
}
