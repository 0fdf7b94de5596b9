package store

// AuditRaw calls fn with every stored key and value of the audit log as they are on disk, for
// checks that the log keeps an entry and nothing else.
func (db *DB) AuditRaw(fn func(key, value []byte) error) error {
	return db.View(func(tx *Tx) error {
		for _, name := range [][]byte{bucketAudit, bucketAuditByCust} {
			if err := tx.tx.Bucket(name).ForEach(fn); err != nil {
				return err
			}
		}
		return nil
	})
}
