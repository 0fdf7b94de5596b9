package media

import (
	"context"
	"errors"
	"time"

	"github.com/trackline/trackline/recordings"
	"github.com/trackline/trackline/store"
)

// RecoverRecordings repairs the recordings a crash left as .part files and links each to its
// call record, as a finished call's recording is linked. Run it at start, before calls.
func RecoverRecordings(ctx context.Context, db *store.DB, rec *recordings.Recorder) (int, error) {
	infos, err := rec.Repair()
	if len(infos) == 0 {
		return 0, err
	}
	now := time.Now().UTC()
	werr := db.Write(ctx, func(tx *store.Tx) error {
		for _, info := range infos {
			c, err := tx.Call(info.CallID)
			if errors.Is(err, store.ErrNotFound) {
				continue // the call's record was erased; the file is still repaired
			}
			if err != nil {
				return err
			}
			r := &store.Recording{
				ID: info.CallID, CustomerID: info.CustomerID, CallID: info.CallID, Path: info.Rel,
				Duration: info.Duration, Size: info.Size, SHA256: info.SHA256, Created: now,
			}
			if err := tx.PutRecording(r); err != nil {
				return err
			}
			c.RecordingID = r.ID
			if err := tx.PutCall(&c); err != nil {
				return err
			}
		}
		return nil
	})
	return len(infos), errors.Join(err, werr)
}
