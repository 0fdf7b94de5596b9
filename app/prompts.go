package app

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/trackline/trackline/internal/fsutil"
	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// Prompts a customer uploads (its disclaimer, its whisper) are converted to 8 kHz mono
// (recordings.ConvertPrompt) and kept under the prompts directory, one folder per
// customer, named by the hash of their audio: a new upload is a new file, so the media
// anchor, which caches prompts by path, plays it from the next call on.

// WithPrompts keeps uploaded prompts under dir.
func WithPrompts(dir string) Option { return func(a *App) { a.promptDir = dir } }

const maxPromptUpload = 25 << 20 // 120 s of 48 kHz stereo 16-bit, and headroom

// promptKind reads a prompt kind from a form or path.
func promptKind(v string) (string, bool) { return v, v == "disclaimer" || v == "whisper" }

// uploadPrompt stores an uploaded WAV as the customer's disclaimer or whisper, or removes
// it (remove=on). Admins only.
func (a *App) uploadPrompt(w http.ResponseWriter, q *request) error {
	if !q.isAdmin() {
		return errForbidden("only an admin changes the prompts")
	}
	if a.promptDir == "" {
		return &pageError{status: http.StatusServiceUnavailable, msg: "prompts cannot be uploaded here"}
	}
	kind, ok := promptKind(q.r.PostFormValue("kind"))
	if !ok {
		return errBadInput("kind: disclaimer or whisper")
	}
	path := ""
	if q.r.PostFormValue("remove") != "on" {
		f, _, err := q.r.FormFile("file")
		if err != nil {
			return a.settingsError(w, q, msg(q.lang, "prompt_file"))
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, maxPromptUpload+1))
		if err != nil {
			return err
		}
		if len(data) > maxPromptUpload {
			return &pageError{status: http.StatusRequestEntityTooLarge, msg: msg(q.lang, "prompt_large")}
		}
		wav, err := recordings.ConvertPrompt(data)
		if errors.Is(err, recordings.ErrPrompt) {
			return a.settingsError(w, q, err.Error())
		}
		if err != nil {
			return err
		}
		if path, err = a.savePrompt(q.customer.ID, wav); err != nil {
			return err
		}
	}
	_, err := a.pool.UpdateCustomer(q.r.Context(), q.customer.ID, func(c *store.Customer) {
		if kind == "disclaimer" {
			c.Prompts.Disclaimer = path
		} else {
			c.Prompts.Whisper = path
		}
	})
	if err != nil {
		return err
	}
	a.auditAs(q.r.Context(), q.actor(), "customer.prompt", q.customer.ID, kind)
	http.Redirect(w, q.r, "/c/"+url.PathEscape(q.customer.ID)+"/settings?saved=1", http.StatusSeeOther)
	return nil
}

// savePrompt writes a converted prompt durably (temporary file, fsync, rename, directory
// fsync) and returns its path.
func (a *App) savePrompt(customerID string, wav []byte) (string, error) {
	if !fsutil.SafeID(customerID) {
		return "", errors.New("prompt: unsafe customer id")
	}
	dir := filepath.Join(a.promptDir, customerID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	sum := sha256.Sum256(wav)
	path := filepath.Join(dir, hex.EncodeToString(sum[:12])+".wav")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(wav); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, fsutil.SyncDir(dir)
}

// promptAudio plays the customer's current disclaimer or whisper in the page.
func (a *App) promptAudio(w http.ResponseWriter, q *request) error {
	kind, ok := promptKind(q.r.PathValue("kind"))
	if !ok {
		return errNotFound
	}
	path := q.customer.Prompts.Disclaimer
	if kind == "whisper" {
		path = q.customer.Prompts.Whisper
	}
	// Only files this app wrote are served (a config may name any path, or "default").
	if a.promptDir == "" || path == "" || !strings.HasPrefix(path, filepath.Join(a.promptDir, q.customer.ID)+string(filepath.Separator)) {
		return errNotFound
	}
	f, err := os.Open(path)
	if err != nil {
		return errNotFound
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "audio/wav")
	w.Header().Set("Cache-Control", "private, no-store")
	http.ServeContent(w, q.r, "", st.ModTime(), f)
	return nil
}
